#include "daemon/commands.h"
#include <stdio.h>
int cmd_teardown(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("not yet\n", stderr);
    return 1;
}
