/* budget: a shared byte budget (see budget.h). */
#include "util/budget.h"

bool budget_take(struct budget *b, uint64_t n)
{
	if (b->limit && (n > b->limit || b->used > b->limit - n)) {
		b->refused++;
		return false;
	}
	b->used += n;
	if (b->used > b->peak)
		b->peak = b->used;
	return true;
}

void budget_give(struct budget *b, uint64_t n)
{
	b->used = n > b->used ? 0 : b->used - n;
}
