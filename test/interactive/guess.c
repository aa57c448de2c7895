/*
 * The guessing game of test/interactive.test.ts and bench/interactive.ts, both sides in
 * one static binary (argv[1] picks the side), so the busybox rootfs needs one file.
 *
 *   guess interactor GAMES SEED [MODE]   picks a number in [1, 10^9] per game; answers each
 *       guess with "<" (the number is smaller), ">" (larger) or "=" (found, next game).
 *       First line to the solution: GAMES. Last line on stderr: "ok GAMES games, ROUNDS
 *       rounds" (one round: a guess and its answer). Exit 0 accepted, 1 wrong answer (more than 30
 *       guesses in a game, a line that is no number, end of file), testlib's codes.
 *       MODE: spin (after the first guess, burn CPU forever), sleep (after the first
 *       guess, sleep forever), fail (after the first guess, exit 3: testlib's FAIL),
 *       crash (after the first guess, SIGSEGV), sink (read and discard lines until end of
 *       file, then say how many on stderr).
 *   guess solution [MODE]   reads GAMES, binary-searches each number. MODE: wrong (guesses
 *       1, 2, 3, ...: too many), hang (sleeps without reading), spin (burns CPU), early
 *       (exits 0 at once), flood (writes "1\n" forever), deaf (on end of file, sleeps
 *       forever), crash (SIGSEGV after the first answer), extra (after the games, keeps
 *       writing: SIGPIPE once the interactor is gone), memory (allocates and touches
 *       memory forever).
 *   guess fds   lists its open descriptors on stderr ("0 -> pipe:[1234]") and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HI 1000000000L
#define MAX_GUESSES 30

static int interactor(long games, unsigned long seed, const char *mode) {
  char line[64];
  long rounds = 0;
  printf("%ld\n", games);
  fflush(stdout);
  for (long g = 0; g < games; g++) {
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    long x = (long)((seed >> 33) % HI) + 1;
    for (int n = 1;; n++) {
      if (!fgets(line, sizeof line, stdin)) {
        if (!strcmp(mode, "sink")) fprintf(stderr, "sink: %d lines\n", n - 1);
        fprintf(stderr, "wrong answer: unexpected end of file in game %ld\n", g + 1);
        return 1;
      }
      if (!strcmp(mode, "spin"))
        for (volatile unsigned long i = 0;; i++) {
        }
      if (!strcmp(mode, "sleep"))
        for (;;) pause();
      if (!strcmp(mode, "fail")) {
        fprintf(stderr, "FAIL: the interactor gave up\n");
        return 3;
      }
      if (!strcmp(mode, "crash")) raise(SIGSEGV);
      if (!strcmp(mode, "sink")) continue;
      char *end;
      long y = strtol(line, &end, 10);
      if (end == line || (*end != '\n' && *end != '\0')) {
        fprintf(stderr, "wrong answer: expected a number, got %.20s\n", line);
        return 1;
      }
      if (n > MAX_GUESSES) {
        fprintf(stderr, "wrong answer: more than %d guesses in game %ld\n", MAX_GUESSES, g + 1);
        return 1;
      }
      rounds++;
      puts(y == x ? "=" : x < y ? "<" : ">");
      fflush(stdout);
      if (y == x) break;
    }
  }
  fprintf(stderr, "ok %ld games, %ld rounds\n", games, rounds);
  return 0;
}

static int solution(const char *mode) {
  char line[64];
  if (!strcmp(mode, "hang"))
    for (;;) pause();
  if (!strcmp(mode, "spin"))
    for (volatile unsigned long i = 0;; i++) {
    }
  if (!strcmp(mode, "early")) return 0;
  if (!strcmp(mode, "flood"))
    for (;;) fputs("1\n", stdout);
  if (!strcmp(mode, "memory"))
    for (;;) {
      char *p = malloc(1 << 20);
      if (p) memset(p, 1, 1 << 20);
    }
  if (!fgets(line, sizeof line, stdin)) return 2;
  long games = atol(line);
  for (long g = 0; g < games; g++) {
    long lo = 1, hi = HI, tries = 0;
    for (;;) {
      long y = !strcmp(mode, "wrong") ? ++tries : lo + (hi - lo) / 2;
      printf("%ld\n", y);
      fflush(stdout);
      if (!fgets(line, sizeof line, stdin)) {
        if (!strcmp(mode, "deaf"))
          for (;;) pause();
        return 2;
      }
      if (!strcmp(mode, "crash")) raise(SIGSEGV);
      if (line[0] == '=') break;
      if (line[0] == '<') hi = y - 1;
      else lo = y + 1;
    }
  }
  if (!strcmp(mode, "extra"))
    for (;;) {
      puts("1");
      fflush(stdout);
    }
  return 0;
}

/* Each open descriptor and what it points at, on stderr: "N -> pipe:[INODE]". */
static int fds(void) {
  char path[64], target[256];
  for (int fd = 0; fd < 1024; fd++) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) continue;
    target[n] = 0;
    fprintf(stderr, "%d -> %s\n", fd, target);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "fds")) return fds();
  if (argc >= 4 && !strcmp(argv[1], "interactor"))
    return interactor(atol(argv[2]), strtoul(argv[3], 0, 10), argc > 4 ? argv[4] : "");
  if (argc >= 2 && !strcmp(argv[1], "solution")) return solution(argc > 2 ? argv[2] : "");
  fprintf(stderr, "usage: guess interactor GAMES SEED [MODE] | guess solution [MODE]\n");
  return 64;
}
