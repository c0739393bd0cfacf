/*
 * trace.h - `mqlab trace`: a proxy that prints the live packet exchange.
 *
 * It starts a bundled broker (or uses --to HOST:PORT), puts the fault
 * proxy in front of it on a fixed local port, and prints every packet as
 * it passes, one line each, like a sequence diagram; or one JSON object
 * per line with --format json. Fault flags let a student cause, and
 * watch, the loss or the duplicate the course talks about.
 */
#ifndef MQLAB_TRACE_H
#define MQLAB_TRACE_H

/* argv holds the arguments after "trace". lang is "es" or "en".
 * Returns the process exit code (0, 2 bad usage, 3 missing broker,
 * 130 after Ctrl-C is still 0: stopping is the normal way out). */
int trace_main(int argc, char **argv, const char *lang);

/* Parse a fault spec "[up:|down:]TYPE:N" into its parts. Returns 0, or -1
 * when it is malformed. Exposed for the unit tests. */
int trace_parse_spec(const char *spec, int *dir, int *type, unsigned *nth);

#endif
