/*
 * Conversation tests: every .conv file of one directory is one cmocka test, run by
 * the one conversation runner (conv_runner.h) for every protocol.
 *
 *   test_conversations LISTENER DIR
 *
 * LISTENER ("smtp", "imap", "pop3", ...) is the session a file gets before its first
 * "# connect:"; tests/unit/meson.build runs tests/conversations (smtp),
 * tests/conversations/imap and tests/conversations/pop3, and each directory of
 * tests/unit/conversations-typo, which must fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_runner.h"

static const char *conv_dir;
static const char *default_listener;

static void run_file(void **state)
{
	const char *name = *state;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", conv_dir, name);
	if (!conv_run_file(path, name, default_listener))
		fail_msg("%s failed", name);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s LISTENER DIR\n", argv[0]);
		return 2;
	}
	default_listener = argv[1];
	conv_dir = argv[2];
	DIR *d = opendir(conv_dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", conv_dir);
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && strcmp(de->d_name + l - 5, ".conv") == 0) {
			char **more = realloc(names, (n + 1) * sizeof(*names));
			if (!more)
				return 1;
			names = more;
			names[n++] = strdup(de->d_name);
		}
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "no .conv files in %s\n", conv_dir);
		return 1;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = names[i];
		tests[i].test_func = run_file;
		tests[i].initial_state = names[i];
	}
	char group[64];
	snprintf(group, sizeof(group), "conversations_%s", default_listener);
	int rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
