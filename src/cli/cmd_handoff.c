/*
 * cmd_handoff: `mxbait handoff --daemon -d DIR --backend SPEC --helo NAME --domains LIST`:
 * the backend hand-off worker (src/guard/handoff.h).  `mxbait serve` starts it as a
 * child when backend_mta is set; it is not meant to be run by hand except for tests
 * (--once: one pass).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "guard/handoff.h"

static const char usage[] =
	"--daemon -d DIR --backend SPEC --helo NAME --domains D1,D2 [--once]";

int cmd_handoff(int argc, char **argv)
{
	const char *daemon = NULL, *backend = NULL, *helo = NULL, *domains = NULL, *once = NULL;
	const struct cli_option extra[] = {
		{"daemon", false, &daemon}, {"backend", true, &backend}, {"helo", true, &helo},
		{"domains", true, &domains}, {"once", false, &once}, {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	struct handoff_config hc;
	memset(&hc, 0, sizeof(hc));
	if (!daemon || !backend || !helo || !domains ||
	    config_backend_parse(backend, &hc.backend) != 0) {
		fprintf(stderr, "usage: mxbait handoff %s\n", usage);
		return 2;
	}
	char *list = strdup(domains);
	const char *v[256];
	size_t n = 0;
	for (char *t = strtok(list, ","); t && n < 256; t = strtok(NULL, ","))
		v[n++] = t;
	hc.data_dir = o.data_dir;
	hc.helo = helo;
	hc.domains = v;
	hc.n_domains = n;
	hc.poll_ms = 1000;
	hc.once = once != NULL;
	int rc = handoff_run(&hc);
	free(list);
	return rc;
}
