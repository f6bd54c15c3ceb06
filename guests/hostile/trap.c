/* Hostile guest: executes a wasm `unreachable` trap (SIGILL natively). */
int main(void)
{
    __builtin_trap();
}
