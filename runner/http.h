/*
 * http.h - a small HTTP/1.1 server on the kit's event loop (net.h), for
 * the browser lab and for `mqlab trace --web`.
 *
 * It serves, on 127.0.0.1 only and to GET and HEAD only:
 *   - files from one folder (a student's dashboard), never outside it:
 *     no "..", no symbolic link that leads out, regular files only;
 *   - routes the kit adds: a file at a fixed path (mqtt.js's browser
 *     bundle) or bytes held in memory (the trace page);
 *   - WebSocket upgrades on the paths the kit names, whose clients get
 *     what http_broadcast() sends them (the trace's live events). What
 *     they send is read and dropped.
 *
 * The server runs its own thread; every call here is thread-safe. It
 * records each request it answered (method, path, status), so a grader
 * can tell which files a page asked for.
 */
#ifndef MQLAB_HTTP_H
#define MQLAB_HTTP_H

#include <stddef.h>

typedef struct http_server http_server;

typedef struct {
    int port;                   /* 0: a free port */
    const char *root;           /* folder of files to serve; NULL: none */
    size_t max_file;            /* largest file served; 0: 16 MiB */
} http_opts;

/* Start listening. KIT_OK and *out, or an error with err set. */
int http_start(const http_opts *o, http_server **out, char *err);
int http_port(const http_server *s);

/* Serve the file at fs_path (read on each request) at url_path ("/x.js"). */
int http_route_file(http_server *s, const char *url_path, const char *fs_path, char *err);
/* Serve a copy of body at url_path with content type ctype (NULL: from
 * the path's extension). */
int http_route_bytes(http_server *s, const char *url_path, const char *ctype, const void *body, size_t len,
                     char *err);
/* Accept WebSocket upgrades at url_path. */
int http_route_ws(http_server *s, const char *url_path, char *err);

/* Send msg to every WebSocket client of url_path, as one binary message.
 * A client that cannot keep up (more than 8 MiB waiting) is dropped. */
void http_broadcast(http_server *s, const char *url_path, const void *msg, size_t len);
/* WebSocket clients connected right now on url_path. */
int http_ws_clients(http_server *s, const char *url_path);

/* The requests answered so far: calls fn for each, in order, from index
 * `from`; returns the count. */
typedef void http_req_fn(void *ud, const char *method, const char *path, int status);
size_t http_requests(http_server *s, size_t from, http_req_fn *fn, void *ud);

/* Stop and free (closes every connection). NULL is fine. */
void http_free(http_server *s);

/* The content type the server gives a file name ("text/html; ..."). */
const char *http_content_type(const char *name);

#endif
