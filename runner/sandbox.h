/* sandbox.h - (being written) */
#ifndef MQLAB_SANDBOX_H
#define MQLAB_SANDBOX_H
#endif
