/*
 * host.h - the one door into Lua.
 *
 * A host owns a lua_State with the kit's modules loaded. Every entry into
 * Lua goes through host_call(): lua_pcall with a message handler that
 * adds a traceback, so a lab author's mistake becomes a report naming the
 * file and line, never a crash.
 *
 * Time budget: host_set_deadline() arms a wall-clock deadline, enforced
 * in C by a count hook (every 1000 VM instructions) and by the bindings,
 * which clamp every wait with host_clamp_ms(). The same hook turns Ctrl-C
 * (cleanup_interrupted) into an error, so Lua code cannot hold the kit.
 */
#ifndef MQLAB_HOST_H
#define MQLAB_HOST_H

#include <stdint.h>
#include <lua.h>

typedef struct host host_t;

/* A new state with the safe standard libraries and the kit's modules
 * (mqlab.mqtt, mqlab.topics, mqlab.broker, mqlab.programs, mqlab.proxy,
 * mqlab.tls, mqlab.sqlite, mqlab.bench, mqlab.kit)
 * in package.preload, and the prelude loaded. */
host_t *host_new(char *err);
void host_free(host_t *h);
lua_State *host_state(host_t *h);

/* Call the function below nargs arguments on the stack, protected.
 * KIT_OK with nresults on the stack; otherwise the stack is restored,
 * err holds the message and traceback, and the code is KIT_ETIMEOUT when
 * the deadline passed, KIT_EINTR on Ctrl-C, KIT_ERR for a Lua error. */
int host_call(host_t *h, int nargs, int nresults, char *err, size_t errlen);

/* Arm (ms > 0) or disarm (ms <= 0) the deadline, ms from now. */
void host_set_deadline(int ms);
/* ms left before the deadline (INT32_MAX when none is armed). */
int host_left_ms(void);

/* For bindings: the wait a caller asked for (ms), cut to what is left of
 * the deadline. Raises a Lua error when the user interrupted or the
 * deadline has passed. */
int host_clamp_ms(lua_State *L, int ms);

/* Seconds (Lua number) argument at index i as ms, with a default. */
int host_opt_ms(lua_State *L, int i, int def_ms);

/* For bindings: register the metatable `name` of a userdata class, with
 * meta's metamethods (an "__index" entry there is a placeholder) and an
 * __index table holding methods. Leaves the stack as it found it. */
struct luaL_Reg;
void host_class(lua_State *L, const char *name, const struct luaL_Reg *meta, const struct luaL_Reg *methods);

/* Compile a text chunk named chunkname (e.g. "@labs/01-hello/lab.lua",
 * so errors name the file and line) and push it as a function whose
 * environment is the table at stack index env_idx (0: the globals).
 * Binary chunks are refused. */
int host_load(host_t *h, const char *code, size_t len, const char *chunkname,
              int env_idx, char *err, size_t errlen);

#endif
