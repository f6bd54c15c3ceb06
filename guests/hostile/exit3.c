/* Hostile guest: prints "bye" and exits with status 3. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    fputs("bye\n", stdout);
    exit(3);
}
