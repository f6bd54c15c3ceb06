/* Does nothing and exits 0; used to measure per-task overhead. */
int main(void) { return 0; }
