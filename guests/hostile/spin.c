/* Hostile guest: spins forever (must be stopped by the CPU/time limit). */
int main(void)
{
    volatile unsigned long counter = 0;
    for (;;)
        counter++;
}
