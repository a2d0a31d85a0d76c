#!/usr/bin/perl
# analyze-sa-uris.pl: the reference for bench/analyze-quality.py.  For each message
# file, SpamAssassin's own URI extraction (Mail::SpamAssassin 4, Debian package
# `spamassassin`: PerMsgStatus::get_uri_detail_list, i.e. its HTML parser, its text
# URI regexes and uri_list_canonicalize with redirector unwrapping) and prints one JSON
# line: {"file", "groups": [{"raw", "v": [its cleaned http/https/ftp forms], "h": [its
# hosts with a valid TLD, as SpamAssassin keeps them for URIBL lookups]}]}; mailto:
# and other schemes are left out.  No rules run, nothing is looked up, no network.
# Not a test.
#   bench/analyze-sa-uris.pl FILE...
use strict;
use warnings;
use Mail::SpamAssassin;
use Mail::SpamAssassin::PerMsgStatus;
use JSON::PP;

my $tmp = $ENV{TMPDIR} || '/tmp';
my $sa = Mail::SpamAssassin->new({
	dont_copy_prefs => 1,
	local_tests_only => 1,
	userprefs_filename => '/dev/null',
	home_dir_for_helpers => $tmp,
	debug => 0,
});
$sa->init(0);
my $json = JSON::PP->new->canonical(1)->ascii(1);
for my $f (@ARGV) {
	open(my $fh, '<:raw', $f) or next;
	local $/;
	my $raw = <$fh>;
	close $fh;
	my $mail = $sa->parse($raw, 1);
	my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $mail);
	my $d = $pms->get_uri_detail_list();
	my @groups;
	for my $r (sort keys %$d) {
		my @v = grep { m{^(?:https?|ftp)://}i } @{ $d->{$r}->{cleaned} || [] };
		next unless @v;
		my @h = sort map { lc } keys %{ $d->{$r}->{hosts} || {} };
		push @groups, {raw => $r, v => [sort @v], h => \@h};
	}
	print $json->encode({file => $f, groups => \@groups}), "\n";
	$pms->finish();
	$mail->finish();
}
