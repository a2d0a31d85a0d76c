/* test_adb_writers: two processes writing one analysis.db at once (issue 7: `mxbait
 * analyze --store` beside the daemon's analyzer child once exited 1 with
 * "analysis.db: not an error").  Both open a new analysis.db at the same moment, many
 * times over, then write beside each other: every open and every write must succeed,
 * and no error may read "not an error". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyze/adb.h"

#define ROUNDS 30
#define WRITES 30

/* One writer: wait for the start signal, open, write, report on out_fd. */
static int writer(const char *dir, int start_fd, int out_fd, int id)
{
	char c;
	if (read(start_fd, &c, 1) != 1)
		return 3;
	char *err = NULL;
	struct adb *db = adb_open(dir, &err);
	if (!db) {
		dprintf(out_fd, "writer %d: open: %s\n", id, err ? err : "(no message)");
		return 1;
	}
	for (int i = 0; i < WRITES; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%d.M%dP%dQ%X.host", i, i, id, i);
		if (adb_spool_mark(db, name, i) < 0) {
			dprintf(out_fd, "writer %d: write %d failed\n", id, i);
			adb_close(&db);
			return 2;
		}
	}
	adb_close(&db);
	return 0;
}

static void test_two_writers(void **state)
{
	int failures = 0;
	char first[600] = "";
	for (int round = 0; round < ROUNDS; round++) {
		char tmpl[] = "/tmp/mxb-adbw-XXXXXX";
		char *dir = mkdtemp(tmpl);
		assert_non_null(dir);
		int start[2], out[2];
		assert_int_equal(pipe(start), 0);
		assert_int_equal(pipe(out), 0);
		pid_t kids[2];
		for (int k = 0; k < 2; k++) {
			kids[k] = fork();
			assert_true(kids[k] >= 0);
			if (kids[k] == 0) {
				close(start[1]);
				close(out[0]);
				_exit(writer(dir, start[0], out[1], k));
			}
		}
		close(start[0]);
		close(out[1]);
		/* Both at once. */
		assert_int_equal(write(start[1], "gg", 2), 2);
		close(start[1]);
		for (int k = 0; k < 2; k++) {
			int status;
			assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failures++;
		}
		char msg[512];
		ssize_t n = read(out[0], msg, sizeof(msg) - 1);
		close(out[0]);
		if (n > 0) {
			msg[n] = '\0';
			if (!first[0])
				snprintf(first, sizeof(first), "round %d: %.500s", round, msg);
			assert_null(strstr(msg, "not an error"));
		}
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	if (failures)
		fail_msg("%d of %d writers failed; first: %s", failures, 2 * ROUNDS, first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_writers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
