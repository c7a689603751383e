/*
 * cli.h - command-line parsing (see cli.c). Internal.
 */
#ifndef MPM_CLI_H
#define MPM_CLI_H

#include "mpimap/mpimap.h"

enum { MPM_CLI_RUN = 0, MPM_CLI_DONE = 1, MPM_CLI_USAGE = 2 };

typedef struct mpm_cli_s {
    mpm_config_t cfg;
    const mpm_kernel_t *kernel;
    void *opts;
    char **args; /* positional arguments after the kernel name */
    int nargs;
    mpm_inputs_t inputs;
} mpm_cli_t;

/* Parses argv. MPM_CLI_RUN: run cli; MPM_CLI_DONE: help/version printed;
 * MPM_CLI_USAGE: error printed by rank 0. Free with mpm__cli_free in all cases. */
int mpm__cli_parse(int argc, char **argv, int rank, mpm_cli_t *cli);
void mpm__cli_free(mpm_cli_t *cli);

/* Appends a JSON object {"name": value, ...} of every option of `table`
 * (NULL: the engine's options, read from an mpm_config_t) as stored in base.
 * 0, or -1 when out of memory. */
int mpm__options_json(mpm_buf_t *b, const mpm_option_t *table, const void *base);

/* The engine's option table (the fields of mpm_config_t), NULL-terminated. */
const mpm_option_t *mpm__engine_options(void);

/* Appends the value of option o stored in base: as JSON (json = 1: flags as
 * booleans, choices by name, strings quoted or null), or as numbers
 * (json = 0: flags and choices as integers; returns 1 without writing for a
 * string option, which the caller quotes its own way). 0, 1, or -1 when out
 * of memory. */
int mpm__option_value(mpm_buf_t *b, const mpm_option_t *o, const void *base, int json);

#endif
