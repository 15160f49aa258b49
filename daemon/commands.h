/*
 * The subcommands of the tidemark CLI. Each takes argc/argv starting at its
 * own name, prints its own --help, and returns the process exit code:
 * 0 success, 1 failure (one line on stderr), 2 usage error.
 */
#ifndef TM_COMMANDS_H
#define TM_COMMANDS_H

enum { EXIT_USAGE = 2 };

typedef struct Command {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
} Command;

/* Prints "tidemark: [what: ]<tm_error()>" on stderr; returns 1. */
int cmd_die(const char *what);

int cmd_run(int argc, char **argv);
int cmd_sync_sequences(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_dead_letter(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_preflight(int argc, char **argv);
int cmd_cutover(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_teardown(int argc, char **argv);
int cmd_runbook(int argc, char **argv);

#endif
