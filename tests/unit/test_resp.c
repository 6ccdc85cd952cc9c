/*
 * test_resp.c - RESP formatting and the arena-backed reply parser: exact
 * bytes, every reply type, nesting (CLUSTER SLOTS shape), input split at
 * every byte, caps, protocol errors, and that the arena stops growing.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include "resp.h"

static void test_format_exact_bytes(void **state) {
  (void)state;
  rl__buf b;
  rl__buf_init(&b, 1 << 20);
  const char *argv[] = {"SET", "k", ""};
  size_t lens[] = {3, 1, 0};
  rl__redis_args a = {3, argv, lens};
  assert_int_equal(rl__resp_format(&b, &a), RL_OK);
  const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_int_equal(rl__resp_cmd_len(&a), strlen(want));
  assert_memory_equal(b.data, want, b.len);
  const char bin[] = {'a', '\0', 'b'}; /* binary safe */
  const char *argv2[] = {"GET", bin};
  size_t lens2[] = {3, 3};
  rl__redis_args a2 = {2, argv2, lens2};
  assert_int_equal(rl__resp_format(&b, &a2), RL_OK);
  assert_memory_equal(b.data + strlen(want),
                      "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n", 22);
  rl__buf_close(&b);
}

static void test_format_cap_and_invalid(void **state) {
  (void)state;
  rl__buf b;
  rl__buf_init(&b, 32);
  const char *argv[] = {"SET", "key", "a value that does not fit"};
  size_t lens[] = {3, 3, 25};
  rl__redis_args a = {3, argv, lens};
  assert_int_equal(rl__resp_format(&b, &a), RL_ERR_NO_MEMORY);
  assert_int_equal(b.len, 0); /* unchanged */
  rl__redis_args none = {0, argv, lens};
  assert_int_equal(rl__resp_format(&b, &none), RL_ERR_INVALID_ARGUMENT);
  const char *nul[] = {"GET", NULL};
  size_t nlens[] = {3, 1};
  rl__redis_args bad = {2, nul, nlens};
  assert_int_equal(rl__resp_format(&b, &bad), RL_ERR_INVALID_ARGUMENT);
  a.argc = 2;
  assert_int_equal(rl__resp_format(&b, &a), RL_OK);
  rl__buf_reset(&b, 0);
  assert_null(b.data);
  rl__buf_close(&b);
}

static const char stream[] =
    "+OK\r\n:-42\r\n$-1\r\n-ERR bad thing\r\n$3\r\nfoo\r\n$0\r\n\r\n"
    "*-1\r\n*0\r\n"
    "*1\r\n*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n"
    "$4\r\nabcd\r\n";

static void check_stream(rl__resp_reader *r) {
  const rl__redis_reply *x;
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_STATUS);
  assert_string_equal(x->str, "OK");
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_INTEGER);
  assert_int_equal(x->integer, -42);
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_NIL);
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_ERROR);
  assert_string_equal(x->str, "ERR bad thing");
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_STRING);
  assert_int_equal(x->len, 3);
  assert_string_equal(x->str, "foo");
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_STRING);
  assert_int_equal(x->len, 0);
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_NIL); /* null array */
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1);
  assert_int_equal(x->type, RL__REPLY_ARRAY);
  assert_int_equal(x->elements, 0);
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 1); /* CLUSTER SLOTS shape */
  assert_int_equal(x->type, RL__REPLY_ARRAY);
  assert_int_equal(x->elements, 1);
  const rl__redis_reply *range = &x->element[0];
  assert_int_equal(range->elements, 3);
  assert_int_equal(range->element[1].integer, 5460);
  const rl__redis_reply *master = &range->element[2];
  assert_int_equal(master->type, RL__REPLY_ARRAY);
  assert_string_equal(master->element[0].str, "127.0.0.1");
  assert_int_equal(master->element[1].integer, 7000);
  assert_string_equal(master->element[2].str, "abcd");
  rl__resp_release(r);
  assert_int_equal(rl__resp_next(r, &x), 0);
}

static void test_parse_all_types(void **state) {
  (void)state;
  rl__resp_reader r;
  assert_int_equal(rl__resp_reader_init(&r, 1 << 20), RL_OK);
  assert_int_equal(rl__resp_feed(&r, stream, sizeof(stream) - 1), RL_OK);
  check_stream(&r);
  rl__resp_reader_close(&r);
}

static void test_parse_split_everywhere(void **state) {
  (void)state;
  rl__resp_reader r;
  assert_int_equal(rl__resp_reader_init(&r, 1 << 20), RL_OK);
  size_t n = sizeof(stream) - 1;
  for (size_t split = 1; split < n; split++) {
    assert_int_equal(rl__resp_reader_reset(&r), RL_OK);
    assert_int_equal(rl__resp_feed(&r, stream, split), RL_OK);
    const rl__redis_reply *x;
    int got = 0;
    while (rl__resp_next(&r, &x) == 1) { /* whatever is complete so far */
      rl__resp_release(&r);
      got++;
    }
    assert_int_equal(rl__resp_feed(&r, stream + split, n - split), RL_OK);
    while (rl__resp_next(&r, &x) == 1) {
      rl__resp_release(&r);
      got++;
    }
    assert_int_equal(got, 9);
  }
  rl__resp_reader_close(&r);
}

static void test_too_large_and_protocol_error(void **state) {
  (void)state;
  rl__resp_reader r;
  const rl__redis_reply *x;
  assert_int_equal(rl__resp_reader_init(&r, 1024), RL_OK);
  char big[2100];
  memcpy(big, "$2000\r\n", 7);
  memset(big + 7, 'x', 2000);
  memcpy(big + 2007, "\r\n", 2);
  assert_int_equal(rl__resp_feed(&r, big, 2009), RL_OK);
  assert_int_equal(rl__resp_next(&r, &x), -1);
  assert_non_null(strstr(r.errstr, "larger"));
  assert_int_equal(rl__resp_reader_reset(&r), RL_OK);
  assert_int_equal(rl__resp_feed(&r, "?junk\r\n", 7), RL_OK);
  assert_int_equal(rl__resp_next(&r, &x), -1);
  assert_non_null(strstr(r.errstr, "Protocol error"));
  assert_int_equal(rl__resp_reader_reset(&r), RL_OK); /* usable again */
  assert_int_equal(rl__resp_feed(&r, ":7\r\n", 4), RL_OK);
  assert_int_equal(rl__resp_next(&r, &x), 1);
  assert_int_equal(x->integer, 7);
  rl__resp_reader_close(&r);
}

static size_t chunk_count(const rl__resp_reader *r) {
  size_t n = 0;
  for (const void *const *c = (const void *const *)r->chunks; c != NULL;
       c = (const void *const *)*c) /* next is the first field */
    n++;
  return n;
}

static void test_arena_stops_growing(void **state) {
  (void)state;
  rl__resp_reader r;
  assert_int_equal(rl__resp_reader_init(&r, 1 << 20), RL_OK);
  char msg[4096];
  size_t len = (size_t)snprintf(msg, sizeof(msg), "*100\r\n");
  for (int i = 0; i < 100; i++)
    len += (size_t)snprintf(msg + len, sizeof(msg) - len, "$5\r\nv%04d\r\n", i);
  size_t chunks_after_first = 0;
  for (int round = 0; round < 1000; round++) {
    const rl__redis_reply *x;
    assert_int_equal(rl__resp_feed(&r, msg, len), RL_OK);
    assert_int_equal(rl__resp_next(&r, &x), 1);
    assert_int_equal(x->elements, 100);
    assert_string_equal(x->element[99].str, "v0099");
    rl__resp_release(&r);
    if (round == 0)
      chunks_after_first = chunk_count(&r);
  }
  assert_int_equal(chunk_count(&r), chunks_after_first);
  rl__resp_reader_close(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_exact_bytes),
      cmocka_unit_test(test_format_cap_and_invalid),
      cmocka_unit_test(test_parse_all_types),
      cmocka_unit_test(test_parse_split_everywhere),
      cmocka_unit_test(test_too_large_and_protocol_error),
      cmocka_unit_test(test_arena_stops_growing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
