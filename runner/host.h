/*
 * host.h - the one door into Lua.
 *
 * A host owns a lua_State with the kit's modules loaded. Every entry into
 * Lua goes through host_call(): lua_pcall with a message handler that
 * adds a traceback, so a lab author's mistake becomes a report naming the
 * file and line, never a crash.
 *
 * Time budget: host_set_deadline() arms a wall-clock deadline, enforced
 * in C by a count hook (every 1000 VM instructions, then every instruction
 * once the budget is spent, so a lab's own pcall cannot swallow it) and
 * by the bindings, which clamp every wait with host_clamp_ms(). The same
 * hook turns Ctrl-C (cleanup_interrupted) into an error, so Lua code
 * cannot hold the kit. What no hook reaches (a long call inside C, such
 * as a pathological string pattern) is the worker process's to end.
 *
 * A Lua error outside any protected call reaches a panic handler that
 * releases everything the kit started before leaving (exit code 70).
 */
#ifndef MQLAB_HOST_H
#define MQLAB_HOST_H

#include <stdint.h>
#include <lua.h>

typedef struct host host_t;

/* A new state with the safe standard libraries and the kit's modules
 * (mqlab.mqtt, mqlab.topics, mqlab.broker, mqlab.programs, mqlab.proxy,
 * mqlab.tls, mqlab.sqlite, mqlab.bench, mqlab.browser, mqlab.kit)
 * in package.preload, and the prelude loaded. */
host_t *host_new(char *err);
void host_free(host_t *h);
lua_State *host_state(host_t *h);

/* Call the function below nargs arguments on the stack, protected.
 * KIT_OK with nresults on the stack; otherwise the stack is restored,
 * err holds the message and traceback, and the code is KIT_ETIMEOUT when
 * the deadline passed, KIT_EINTR on Ctrl-C, KIT_ERR for a Lua error. */
int host_call(host_t *h, int nargs, int nresults, char *err, size_t errlen);

/* Push require(module), protected. KIT_OK with the module on the stack. */
int host_require(host_t *h, const char *module, char *err, size_t errlen);
/* Push mqlab.engine[fn] (the engine is loaded once, protected). */
int host_engine(host_t *h, const char *fn, char *err, size_t errlen);

/* Arm (ms > 0) or disarm (ms <= 0) the deadline, ms from now. Either way
 * the spent flag is cleared and the hook goes back to its normal pace. */
void host_set_deadline(int ms);
/* ms left before the deadline (INT32_MAX when none is armed). */
int host_left_ms(void);
/* Did the armed deadline's error get raised? */
int host_deadline_expired(void);

/* For bindings: raise the user's interrupt, or the spent budget (which
 * also switches the hook to every instruction). Never return. */
int host_raise_interrupt(lua_State *L);
int host_raise_timeout(lua_State *L);

/* Where a lab file is calling from: "file:line: " of the first frame
 * outside the kit's own Lua modules, or "" (buf gets it). */
void host_lab_where(lua_State *L, char *buf, size_t len);

/* For bindings: raise, naming the lab's file and line, unless the
 * grading's policy grants rights (POLICY_*) on path; resolved (may be
 * NULL) gets what policy_check resolved. See policy.h. */
void host_allow(lua_State *L, const char *path, int rights, char *resolved, size_t len);

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
