/*
 * benchcmd.h - `mqlab bench`: the load generator's command line.
 *
 *   mqlab bench conn|steady|burst|ramp [OPTIONS]
 *
 * Without --host/--port it starts a bundled broker (broker-config/
 * bench.conf) and stops it at the end. Prints a summary (text), one JSON
 * object (json) or the per-second series (csv) on stdout; a progress line
 * once a second on stderr when that is a terminal.
 */
#ifndef MQLAB_BENCHCMD_H
#define MQLAB_BENCHCMD_H

/* argv holds the arguments after "bench". lang is "es" or "en".
 * Returns the exit code: 0 (also after Ctrl-C, with what was measured),
 * 1 when no client could connect or the run could not be set up,
 * 2 bad usage, 3 mosquitto is not installed (for the bundled broker). */
int bench_main(int argc, char **argv, const char *lang);

#endif
