package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/mattn/go-isatty"

	"github.com/p2pd/p2pd/api"
)

// isTerminal reports whether w is a terminal: text output then gets
// aligned columns with a header; piped, it stays one plain line per entry
// (SPEC.md's format, for scripts).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// shortPeer shortens a peer ID for a table: its start and its last six
// characters (what chat shows), enough to tell peers apart.
func shortPeer(id string) string {
	if len(id) <= 16 {
		return id
	}
	return id[:8] + "…" + id[len(id)-6:]
}

// peerIDPattern matches the peer IDs in a text: 12D3KooW... (an Ed25519
// key inlined) and Qm... (a SHA-256 hash), both base58.
var peerIDPattern = regexp.MustCompile(`\b(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{44}\b`)

// shortenIDs shortens every peer ID in s, for a table that fits a
// terminal (--json and piped output keep them whole).
func shortenIDs(s string) string {
	return peerIDPattern.ReplaceAllStringFunc(s, shortPeer)
}

// flat puts a message on one line: a dial error lists each address
// tried on a line of its own.
// field shows a value that must stay one field of a line: quoted (Go
// syntax) when it holds white space or characters a terminal would act on,
// as a protocol name from an old tunnels.json might.
func field(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func flat(msg string) string {
	return strings.Join(strings.Fields(msg), " ")
}

// ago says how long before now t was, in a unit a person reads at once.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// age says how long a stream has been open.
func age(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// bytesText writes a byte count as people read it.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// newTable returns a writer that aligns tab-separated columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeListeners prints ls's text output. Piped: one line per entry,
// PROTOCOL LISTEN TARGET, with failures and last errors on errw. On a
// terminal: a table.
func writeListeners(w, errw io.Writer, ls []api.Listener, tty bool, now time.Time) {
	if !tty {
		for _, l := range ls {
			proto, listen := field(l.Protocol), field(l.ListenAddress)
			fmt.Fprintf(w, "%s %s %s\n", proto, listen, field(l.TargetAddress))
			if l.State == api.StateFailed {
				fmt.Fprintf(errw, "%s %s: failed to restore: %s\n", proto, listen, flat(l.LastError))
			} else if l.LastError != "" {
				// stdout stays one line per listener for scripts.
				fmt.Fprintf(errw, "%s %s: last error: %s\n", proto, listen, flat(l.LastError))
			}
		}
		return
	}
	if len(ls) == 0 {
		fmt.Fprintln(w, "no listeners: add one with `p2pd listen` or `p2pd forward`")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "KIND\tPROTOCOL\tLISTEN\tTARGET\tSTATE\tALLOWED\tLAST ERROR")
	for _, l := range ls {
		target := l.TargetAddress
		if l.Peer != "" {
			target += " → " + shortPeer(l.Peer)
		}
		if l.Pick != "" {
			target += " (" + l.Pick + ")"
		}
		state := l.State
		if state == "" {
			state = api.StateActive
		}
		allowed := "any peer"
		switch {
		case l.Kind == api.KindForward:
			allowed = "-"
		case len(l.AllowedPeers) > 0:
			short := make([]string, len(l.AllowedPeers))
			for i, p := range l.AllowedPeers {
				short[i] = shortPeer(p)
			}
			allowed = strings.Join(short, ",")
		}
		lastErr := "-"
		if l.LastError != "" {
			lastErr = flat(l.LastError)
			if l.LastErrorAt != nil {
				lastErr += " (" + ago(*l.LastErrorAt, now) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Kind, field(l.Protocol), shortenIDs(l.ListenAddress),
			shortenIDs(target), state, allowed, shortenIDs(lastErr))
	}
	_ = tw.Flush()
}

// writeStreams prints streams' text output: piped, ID PROTOCOL ORIGIN
// TARGET (and a UDP flow's datagram counts); on a terminal, a table with
// bytes each way and age.
func writeStreams(w io.Writer, ss []api.Stream, tty bool, now time.Time) {
	if !tty {
		for _, s := range ss {
			fmt.Fprintf(w, "%d %s %s %s", s.ID, s.Protocol, s.OriginAddress, s.TargetAddress)
			if s.DatagramsIn != nil && s.DatagramsOut != nil && s.Dropped != nil {
				fmt.Fprintf(w, " datagrams in %d out %d dropped %d", *s.DatagramsIn, *s.DatagramsOut, *s.Dropped)
			}
			fmt.Fprintln(w)
		}
		return
	}
	if len(ss) == 0 {
		fmt.Fprintln(w, "no open streams")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tPROTOCOL\tORIGIN\tTARGET\tIN\tOUT\tAGE")
	for _, s := range ss {
		in, out := bytesText(s.BytesIn), bytesText(s.BytesOut)
		if s.DatagramsIn != nil && s.DatagramsOut != nil {
			in += fmt.Sprintf(" (%d dgrams)", *s.DatagramsIn)
			if s.Dropped != nil && *s.Dropped > 0 {
				out += fmt.Sprintf(" (%d dgrams, %d dropped)", *s.DatagramsOut, *s.Dropped)
			} else {
				out += fmt.Sprintf(" (%d dgrams)", *s.DatagramsOut)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Protocol, s.OriginAddress,
			shortenIDs(s.TargetAddress), in, out, age(s.Started, now))
	}
	_ = tw.Flush()
}

// closedText is close's text output: "closed 1 listener".
func closedText(n int, what string) string {
	if n != 1 {
		what += "s"
	}
	return fmt.Sprintf("closed %d %s", n, what)
}
