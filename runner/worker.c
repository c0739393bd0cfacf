/* worker.c - (being written) */
#include "worker.h"
