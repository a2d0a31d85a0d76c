/* Moved to src/query/ (shared by the CLI and the web API). */
#include "query/spoolfile.h"
