/*
 * net_test.c - the event loop: readiness, deletion within a batch, the
 * again list, timers and wake-ups; and the TCP variant's results.
 */
#include <CUnit/CUnit.h>

#include "net.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <unistd.h>

typedef struct {
    net_io io;
    int calls;
    unsigned last;
    net_io *victim;             /* deleted by this one's handler */
} probe;

static void on_probe(net_io *io, unsigned ev)
{
    probe *p = io->ud;
    p->calls++;
    p->last = ev;
    if (p->victim) {
        net_del(p->victim);
        p->victim = NULL;
    }
}

static void TEST_ready_and_delete_in_batch(void)
{
    net_loop *l = net_loop_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int a[2], b[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    probe pa = { 0 }, pb = { 0 };
    CU_ASSERT_EQUAL(net_add(l, &pa.io, a[0], NET_IN, on_probe, &pa), 0);
    CU_ASSERT_EQUAL(net_add(l, &pb.io, b[0], NET_IN, on_probe, &pb), 0);
    /* Nothing to read: a zero wait finds nothing. */
    CU_ASSERT_EQUAL(net_turn(l, 0), 0);
    CU_ASSERT_EQUAL(pa.calls + pb.calls, 0);
    /* Both readable; whichever runs first deletes the other, which then
     * must not be called in the same batch. */
    CU_ASSERT_EQUAL(write(a[1], "x", 1), 1);
    CU_ASSERT_EQUAL(write(b[1], "y", 1), 1);
    pa.victim = &pb.io;
    pb.victim = &pa.io;
    CU_ASSERT_EQUAL(net_turn(l, 1000), 2);
    CU_ASSERT_EQUAL(pa.calls + pb.calls, 1);
    CU_ASSERT_TRUE((pa.last | pb.last) & NET_IN);
    /* NET_OUT when asked for. */
    probe *live = pa.io.loop ? &pa : &pb;
    live->calls = 0;
    CU_ASSERT_EQUAL(net_set(&live->io, NET_OUT), 0);
    CU_ASSERT_EQUAL(net_turn(l, 1000), 1);
    CU_ASSERT_EQUAL(live->calls, 1);
    CU_ASSERT_TRUE(live->last & NET_OUT);
    CU_ASSERT_FALSE(live->last & NET_IN);
    /* A hang-up is reported even with nothing asked for. */
    net_set(&live->io, 0);
    close(live == &pa ? a[1] : b[1]);
    live->calls = 0;
    CU_ASSERT_EQUAL(net_turn(l, 1000), 1);
    CU_ASSERT_TRUE(live->last & NET_HUP);
    net_del(&live->io);
    net_del(&live->io);         /* twice is fine */
    close(a[0]);
    close(b[0]);
    if (live == &pa) close(b[1]);
    else close(a[1]);
    net_loop_free(l);
}

static void TEST_again_list(void)
{
    net_loop *l = net_loop_new(NULL);
    int a[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    probe p = { 0 };
    net_add(l, &p.io, a[0], NET_IN, on_probe, &p);
    net_again(&p.io);
    net_again(&p.io);           /* once per turn */
    int64_t t0 = net_now_us();
    net_turn(l, 5000);          /* must not sleep: something is due */
    CU_ASSERT_TRUE(net_now_us() - t0 < 1000000);
    CU_ASSERT_EQUAL(p.calls, 1);
    CU_ASSERT_EQUAL(p.last, NET_IN);
    /* Deleted while due: never called. */
    net_again(&p.io);
    net_del(&p.io);
    net_turn(l, 0);
    CU_ASSERT_EQUAL(p.calls, 1);
    close(a[0]);
    close(a[1]);
    net_loop_free(l);
}

static int fired[3];
static void on_timer(net_timer *t)
{
    fired[(intptr_t)t->ud]++;
}

static void TEST_timers(void)
{
    net_loop *l = net_loop_new(NULL);
    net_timer t[3];
    memset(t, 0, sizeof t);
    memset(fired, 0, sizeof fired);
    int64_t now = net_now_us();
    net_timer_at(l, &t[0], now + 30000, on_timer, (void *)0);
    net_timer_at(l, &t[1], now + 10000, on_timer, (void *)1);
    net_timer_at(l, &t[2], now + 20000, on_timer, (void *)2);
    net_timer_cancel(l, &t[2]);
    /* The wait ends at the first timer, not at the 5 s asked for. */
    int64_t t0 = net_now_us();
    net_turn(l, 5000);
    CU_ASSERT_TRUE(net_now_us() - t0 < 2000000);
    CU_ASSERT_EQUAL(fired[1], 1);
    while (!fired[0]) net_turn(l, 5000);
    CU_ASSERT_EQUAL(fired[0], 1);
    CU_ASSERT_EQUAL(fired[2], 0);
    CU_ASSERT_FALSE(t[0].armed);
    net_loop_free(l);
}

static void *waker(void *arg)
{
    usleep(20000);
    net_wake(arg);
    return NULL;
}

static int woken;
static void on_wake(void *ud)
{
    (void)ud;
    woken++;
}

static void TEST_wake(void)
{
    net_loop *l = net_loop_new(NULL);
    CU_ASSERT_EQUAL(net_wake_init(l, on_wake, NULL), 0);
    woken = 0;
    pthread_t th;
    pthread_create(&th, NULL, waker, l);
    int64_t t0 = net_now_us();
    while (!woken && net_now_us() - t0 < 10000000) net_turn(l, 10000);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(woken, 1);
    CU_ASSERT_TRUE(net_now_us() - t0 < 5000000);
    net_loop_free(l);
}

static void TEST_tcp_conn(void)
{
    int port = 0;
    char err[KIT_ERRLEN];
    int lfd = net_listen_local(0, 8, &port, err);
    CU_ASSERT_TRUE_FATAL(lfd >= 0);
    CU_ASSERT_TRUE(port > 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int inprog = 0;
    int cfd = net_connect((struct sockaddr *)&a, sizeof a, &inprog);
    CU_ASSERT_TRUE_FATAL(cfd >= 0);
    int sfd = -1;
    for (int i = 0; i < 200 && sfd < 0; i++) {
        sfd = net_accept(lfd, NULL, NULL);
        if (sfd < 0) usleep(5000);
    }
    CU_ASSERT_TRUE_FATAL(sfd >= 0);
    for (int i = 0; i < 200 && net_connect_result(cfd) == EINPROGRESS; i++) usleep(5000);
    CU_ASSERT_EQUAL(net_connect_result(cfd), 0);
    CU_ASSERT_EQUAL(net_peer_port(cfd), port);
    net_conn *c = net_tcp(cfd), *s = net_tcp(sfd);
    CU_ASSERT_STRING_EQUAL(c->ops->name, "tcp");
    CU_ASSERT_EQUAL(net_handshake(c), 0);
    char buf[16];
    CU_ASSERT_EQUAL(net_read(s, buf, sizeof buf), NET_AGAIN);
    CU_ASSERT_EQUAL(s->want, NET_IN);
    CU_ASSERT_EQUAL(net_write(c, "hello", 5), 5);
    ssize_t n = NET_AGAIN;
    for (int i = 0; i < 200 && n == NET_AGAIN; i++) {
        n = net_read(s, buf, sizeof buf);
        if (n == NET_AGAIN) usleep(5000);
    }
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
    CU_ASSERT_EQUAL(net_pending(s), 0);
    CU_ASSERT_EQUAL(net_shutdown(c), 0);
    n = NET_AGAIN;
    for (int i = 0; i < 200 && n == NET_AGAIN; i++) {
        n = net_read(s, buf, sizeof buf);
        if (n == NET_AGAIN) usleep(5000);
    }
    CU_ASSERT_EQUAL(n, 0);      /* the FIN */
    /* A reset: the other side's read fails with ECONNRESET. */
    net_close(c, 1);
    n = NET_AGAIN;
    for (int i = 0; i < 200 && n != NET_FAIL; i++) {
        n = net_write(s, "x", 1);
        if (n != NET_FAIL) usleep(5000);
    }
    CU_ASSERT_EQUAL(n, NET_FAIL);
    CU_ASSERT_TRUE(s->err == ECONNRESET || s->err == EPIPE);
    CU_ASSERT_TRUE(net_why(s)[0] != '\0');
    net_close(s, 0);
    close(lfd);
}

int init_net_tests(void)
{
    CU_pSuite s = CU_add_suite("net", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "readiness, and deletion within a batch", TEST_ready_and_delete_in_batch) ||
        !CU_add_test(s, "the again list", TEST_again_list) ||
        !CU_add_test(s, "timers", TEST_timers) ||
        !CU_add_test(s, "wake from another thread", TEST_wake) ||
        !CU_add_test(s, "the TCP variant", TEST_tcp_conn))
        return 1;
    return 0;
}
