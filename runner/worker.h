/* worker.h - (being written) */
#ifndef MQLAB_WORKER_H
#define MQLAB_WORKER_H
#endif
