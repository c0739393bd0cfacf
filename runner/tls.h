/*
 * tls.h - the kit's TLS side, with OpenSSL, in three parts: the PKI the
 * TLS labs use (pki.h), probes of a listener (tlsprobe.h: which protocol
 * versions it accepts, which certificate it presents, whether it answers
 * plain MQTT), and an impostor broker that records what a client does
 * when shown a certificate it should not trust (impostor.h).
 *
 * No Lua here (runner/lua_tls.c binds it as mqlab.tls). This header only
 * gathers the three, for callers that use more than one.
 */
#ifndef MQLAB_TLS_H
#define MQLAB_TLS_H

#include "impostor.h"
#include "pki.h"
#include "tlsprobe.h"

#endif
