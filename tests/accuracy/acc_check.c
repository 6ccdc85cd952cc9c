/*
 * acc_check.c - the offline check of logged decisions and the Zipf
 * distribution (acc_check.h).
 */
#include "accuracy/acc_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/oracle.h"

int64_t acc_real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int by_key_then_order(const void *a, const void *b) {
  const acc_rec *x = a, *y = b;
  if (x->policy != y->policy) {
    return x->policy - y->policy;
  }
  if (x->key != y->key) {
    return x->key - y->key;
  }
  if (x->now != y->now) {
    return x->now < y->now ? -1 : 1;
  }
  if (x->allowed != y->allowed) {
    return y->allowed - x->allowed;
  }
  return x->remaining > y->remaining ? -1 : (x->remaining < y->remaining);
}

void acc_check(acc_rec *r, size_t n, const rl_policy *pols, const int *group,
               acc_verdict *v, int64_t half_ms) {
  qsort(r, n, sizeof *r, by_key_then_order);
  for (size_t i = 0; i < n;) {
    om_key k;
    const acc_rec *first = &r[i];
    om_key_init(&k, &pols[first->policy]);
    for (; i < n && r[i].policy == first->policy && r[i].key == first->key;
         i++) {
      acc_verdict *pv = &v[group[r[i].policy]];
      om_result exact, spec;
      om_key_decide(&k, r[i].now, 1, &exact, &spec);
      pv->decisions++;
      pv->late_decisions += r[i].now >= half_ms;
      pv->admitted += r[i].allowed;
      pv->local += r[i].source != RL_SOURCE_REDIS;
      if (r[i].allowed && !exact.admit) {
        pv->over++;
        pv->last_over_ms =
            r[i].now > pv->last_over_ms ? r[i].now : pv->last_over_ms;
      } else if (!r[i].allowed && exact.admit) {
        pv->false_denials++;
        pv->late_false_denials += r[i].now >= half_ms;
        if (getenv("RL_ACCURACY_DEBUG") != NULL && pv->false_denials <= 40) {
          fprintf(stderr,
                  "false denial: policy %u key %u at %lld source %u, oracle "
                  "remaining %llu\n",
                  r[i].policy, r[i].key, (long long)r[i].now, r[i].source,
                  (unsigned long long)exact.remaining);
        }
      }
      if (r[i].allowed) {
        om_key_commit(&k, r[i].now, 1);
      }
    }
    om_key_free(&k);
  }
}

void acc_zipf(double *cdf, int n, double s) {
  double sum = 0;
  for (int k = 0; k < n; k++) {
    sum += 1.0 / pow(k + 1, s);
    cdf[k] = sum;
  }
  for (int k = 0; k < n; k++) {
    cdf[k] /= sum;
  }
}

int acc_zipf_pick(const double *cdf, int n, double u) {
  int k = 0;
  while (k + 1 < n && cdf[k] < u) {
    k++;
  }
  return k;
}
