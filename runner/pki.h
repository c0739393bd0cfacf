/*
 * pki.h - the kit's PKI, with OpenSSL: the CA, server, client, impostor,
 * other-host and expired certificates that the TLS labs use, made where
 * they are missing, and `mqlab certs`.
 *
 * Functions return KIT_OK or a KIT_E* code and write a sentence into err
 * (KIT_ERRLEN bytes, may be NULL), as util.h describes.
 */
#ifndef MQLAB_PKI_H
#define MQLAB_PKI_H

#include <stddef.h>

/* The files of the PKI, NULL-terminated, in the order they are made:
 * ca, server, client, impostor-ca, impostor, otherhost, expired; each as
 * NAME.key then NAME.crt. */
extern const char *const tls_pki_files[];

/* Called once for every file tls_pki_ensure() writes (its full path). */
typedef void (*tls_made_fn)(const char *path, void *ud);

/* Make the PKI in dir (created 0700 when missing) where files are
 * missing; files already there are left alone. If ca.crt or ca.key is
 * missing everything is made again (the rest was signed by the old CA);
 * likewise impostor.* when impostor-ca.* is made again. Otherwise only
 * the pairs with a missing file are made. EC P-256 keys, SHA-256
 * signatures; keys 0600, certificates 0644, each written atomically, the
 * CA last, so an interrupted run is completed by the next one. Holds an
 * flock on dir meanwhile, so two kits never interleave.
 *   made: may be NULL.
 * Returns KIT_OK, KIT_EINVAL (dir NULL/empty), KIT_ERR (cannot write, a
 * file there cannot be read back, OpenSSL failed). */
int tls_pki_ensure(const char *dir, tls_made_fn made, void *ud, char *err);

/* The kit's certs folder, absolute (it may not exist yet):
 * $MQLAB_CERTS, else certs/ beside the mqlab binary when that folder
 * exists and is writable, else $XDG_DATA_HOME/mqlab/certs, else
 * $HOME/.local/share/mqlab/certs. KIT_EMISSING when none can be named. */
int tls_default_certs_dir(char *buf, size_t len, char *err);

/* `mqlab certs [DIR]`: tls_pki_ensure(dir or the default folder) and,
 * unless quiet, print to stdout the folder and each file made (or that
 * nothing was missing). Returns what tls_pki_ensure returned. */
int tls_certs_command(const char *dir, int quiet, char *err);

/* OpenSSL's most recent reason, for messages ("no such file", ...);
 * never NULL. Shared by the probes and the impostor, which load files
 * and make contexts the same way. */
const char *tls_ossl_reason(void);

#endif
