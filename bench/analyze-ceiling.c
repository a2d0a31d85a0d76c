/*
 * analyze-ceiling: what the libraries alone cost, for bench/analyze-throughput.sh.
 * Each file is parsed with GMime and every leaf part decoded through the same filter
 * stream mxbait uses (base64/QP/uuencode), output thrown away; with argv[1] = 1 the
 * text/html parts also go through libxml2's HTML push parser with empty SAX callbacks,
 * as one chunk (as mxbait does).  No links, hashes, libmagic, JSON or campaigns: the
 * floor under `mxbait analyze`'s CPU time with these libraries.  Not part of mxbait.
 *   analyze-ceiling 0|1 FILE...
 */
#include <gmime/gmime.h>
#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int do_html;
static htmlSAXHandler sax;
static void leaf(GMimeObject *parent, GMimeObject *part, gpointer ud) {
	if (!GMIME_IS_PART(part)) return;
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(part));
	if (!w) return;
	GMimeStream *raw = g_mime_data_wrapper_get_stream(w);
	g_mime_stream_reset(raw);
	GMimeStream *fs = g_mime_stream_filter_new(raw);
	GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE || enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE); g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f); g_object_unref(f); }
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	int html = do_html && ct && g_mime_content_type_is_type(ct, "text", "html");
	htmlParserCtxtPtr px = html ? htmlCreatePushParserCtxt(&sax, NULL, NULL, 0, NULL, XML_CHAR_ENCODING_UTF8) : NULL;
	if (px) htmlCtxtUseOptions(px, HTML_PARSE_RECOVER|HTML_PARSE_NOERROR|HTML_PARSE_NOWARNING|HTML_PARSE_NONET|HTML_PARSE_IGNORE_ENC|HTML_PARSE_COMPACT);
	static char buf[65536]; ssize_t n;
	GByteArray *all = g_byte_array_new();
	while ((n = g_mime_stream_read(fs, buf, sizeof buf)) > 0) if (px) g_byte_array_append(all, (guint8*)buf, n);
	if (px) { htmlParseChunk(px, (char*)all->data, all->len, 1); htmlFreeParserCtxt(px); }
	g_byte_array_free(all, TRUE);
	g_object_unref(fs);
}
int main(int argc, char **argv) {
	g_mime_init(); do_html = atoi(argv[1]);
	for (int i = 2; i < argc; i++) {
		gchar *d; gsize len; if (!g_file_get_contents(argv[i], &d, &len, NULL)) continue;
		GMimeStream *s = g_mime_stream_mem_new_with_buffer(d, len);
		GMimeParser *p = g_mime_parser_new_with_stream(s);
		GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
		if (m) { g_mime_message_foreach(m, leaf, NULL); g_object_unref(m); }
		g_object_unref(p); g_object_unref(s); g_free(d);
	}
	return 0;
}
