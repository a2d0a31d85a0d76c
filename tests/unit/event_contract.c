/*
 * event_contract: check event records a fake host collected against the catalogue
 * (src/store/event_schema.h, which a unit test keeps equal to docs/events.md).
 * Shared by the fake host (every engine), the conversation runner and the fuzzers.
 */
#include "event_contract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/event_schema.h"

struct schema_field {
	const char *event;
	const char *field;
	enum mxb_field_type type;
	bool nullable;
};

#define SCHEMA_ROW(ev, f, t, n) {#ev, #f, t, n},
static const struct schema_field schema[] = {MXB_EVENT_FIELDS(SCHEMA_ROW)};

/* Length of the JSON value at p (string, number, literal or array of strings). */
static size_t json_value_len(const char *p, const char *end)
{
	const char *q = p;
	int depth = 0;
	bool in_str = false;
	for (; q < end; q++) {
		if (in_str) {
			if (*q == '\\')
				q++;
			else if (*q == '"')
				in_str = false;
			continue;
		}
		if (*q == '"')
			in_str = true;
		else if (*q == '[')
			depth++;
		else if (*q == ']')
			depth--;
		else if (*q == ',' && depth == 0)
			break;
	}
	return (size_t)(q - p);
}

static bool type_ok(const char *v, size_t len, enum mxb_field_type t, bool nullable)
{
	if (len == 4 && memcmp(v, "null", 4) == 0)
		return nullable;
	switch (t) {
	case MXB_FT_STRING:
		return len >= 2 && v[0] == '"' && v[len - 1] == '"';
	case MXB_FT_INT:
		return len > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'));
	case MXB_FT_BOOL:
		return (len == 4 && memcmp(v, "true", 4) == 0) ||
		       (len == 5 && memcmp(v, "false", 5) == 0);
	case MXB_FT_STRING_ARRAY:
		return len >= 2 && v[0] == '[' && v[len - 1] == ']';
	}
	return false;
}

bool event_contract_check(const char *records, char *err_r, size_t errlen)
{
	const char *p = records;
	if (!p)
		return true;
	while (*p) {
		const char *eol = strchr(p, '\n');
		const char *tab = memchr(p, '\t', eol ? (size_t)(eol - p) : strlen(p));
		if (!eol || !tab) {
			snprintf(err_r, errlen, "malformed event record");
			return false;
		}
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)(tab - p), p);
		const char *f = tab + 1;
		size_t row = 0, nrows = sizeof(schema) / sizeof(schema[0]);
		bool known = false;
		for (size_t i = 0; i < nrows; i++)
			if (strcmp(schema[i].event, name) == 0)
				known = true;
		if (!known) {
			snprintf(err_r, errlen, "event %s is not in the catalogue", name);
			return false;
		}
		while (row < nrows && strcmp(schema[row].event, name) != 0)
			row++;
		while (f < eol) {
			/* ,"key":value */
			if (f[0] != ',' || f[1] != '"') {
				snprintf(err_r, errlen, "%s: bad field syntax at %.20s", name, f);
				return false;
			}
			const char *k = f + 2;
			const char *kend = strchr(k, '"');
			if (!kend || kend[1] != ':') {
				snprintf(err_r, errlen, "%s: bad key", name);
				return false;
			}
			if (row >= nrows || strcmp(schema[row].event, name) != 0 ||
			    strlen(schema[row].field) != (size_t)(kend - k) ||
			    memcmp(schema[row].field, k, (size_t)(kend - k)) != 0) {
				snprintf(err_r, errlen, "%s: field %.*s where the catalogue has %s", name,
					 (int)(kend - k), k,
					 row < nrows && !strcmp(schema[row].event, name)
						 ? schema[row].field
						 : "(end)");
				return false;
			}
			const char *v = kend + 2;
			size_t vlen = json_value_len(v, eol);
			if (!type_ok(v, vlen, schema[row].type, schema[row].nullable)) {
				snprintf(err_r, errlen, "%s: field %s has a bad value %.*s", name,
					 schema[row].field, (int)(vlen > 40 ? 40 : vlen), v);
				return false;
			}
			f = v + vlen;
			/* A cut string value is followed by <field>_length and <field>_sha256
			 * (docs/events.md, "Long values"). */
			if (schema[row].type == MXB_FT_STRING && f < eol) {
				char key[80];
				int kl = snprintf(key, sizeof(key), ",\"%s_length\":", schema[row].field);
				if (kl > 0 && (size_t)kl < sizeof(key) &&
				    !strncmp(f, key, (size_t)kl)) {
					const char *lv = f + kl;
					size_t ll = json_value_len(lv, eol);
					if (!type_ok(lv, ll, MXB_FT_INT, false) ||
					    atol(lv) <= MXB_EVENT_VALUE_MAX) {
						snprintf(err_r, errlen, "%s: bad %s_length", name,
							 schema[row].field);
						return false;
					}
					f = lv + ll;
					kl = snprintf(key, sizeof(key), ",\"%s_sha256\":\"",
						      schema[row].field);
					if (strncmp(f, key, (size_t)kl) != 0 ||
					    f + kl + 65 > eol || f[kl + 64] != '"' ||
					    strspn(f + kl, "0123456789abcdef") != 64) {
						snprintf(err_r, errlen, "%s: %s_length without a "
							 "%s_sha256", name, schema[row].field,
							 schema[row].field);
						return false;
					}
					f += kl + 65;
				}
			}
			row++;
		}
		if (row < nrows && strcmp(schema[row].event, name) == 0) {
			snprintf(err_r, errlen, "%s: field %s is missing", name, schema[row].field);
			return false;
		}
		p = eol + 1;
	}
	return true;
}
