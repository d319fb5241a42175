/*
 * c2c_shim.h - force-included (-include) into the L1's sources for the coherence
 * simulator (c2c_sim.c): routes the copies, compares and mutex calls that the
 * compiler's -fsanitize=thread instrumentation cannot see through the simulator, so
 * they count as the loads and stores they are. Never part of a normal build.
 */
#ifndef PGCW_C2C_SHIM_H
#define PGCW_C2C_SHIM_H

#include <pthread.h>
#include <string.h>

void *c2c_memcpy(void *d, const void *s, size_t n);
int c2c_memcmp(const void *a, const void *b, size_t n);
void *c2c_memset(void *d, int c, size_t n);
int c2c_lock(pthread_mutex_t *m);
int c2c_unlock(pthread_mutex_t *m);

#define memcpy c2c_memcpy
#define memcmp c2c_memcmp
#define memset c2c_memset
#define pthread_mutex_lock c2c_lock
#define pthread_mutex_unlock c2c_unlock

#endif
