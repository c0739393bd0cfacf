/* policy.h - (being written) */
#ifndef MQLAB_POLICY_H
#define MQLAB_POLICY_H
#endif
