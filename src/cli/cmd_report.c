#include <stdio.h>
#include "cli/cli.h"
int cmd_report(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "mxbait report: not built yet\n");
	return 1;
}
