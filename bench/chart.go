package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// bar is one row of the chart.
type bar struct {
	label          string
	s              summary
	target         float64 // 0: none
	color          string
	higherIsBetter bool
}

// panel is a group of bars sharing a scale.
type panel struct {
	title string
	bars  []bar
	floor float64 // the scale reaches at least this far
}

const (
	colP2PD  = "#2f6fb3"
	colQUIC  = "#7aa6d6"
	colRef   = "#8c8c8c"
	colPlain = "#c9c9c9"
	colKubo  = "#ff9f1c"
)

// renderChart draws the throughput and latency ratios to direct loopback
// TCP as an SVG: medians as bars, min–max as whiskers, and as red ticks
// the targets set relative to kubo. kubo's rows, its legend entry and the
// targets appear only when kubo was measured.
func renderChart(res *Results) string {
	tput1, tputn := res.find("tput1"), res.find("tputn")
	rtt, conn := res.find("rtt"), res.find("connect")
	n := res.Settings.ParallelConns
	// vsKubo places a target of factor × kubo's ratio to direct.
	vsKubo := func(f *Figure, factor float64) float64 {
		if k := f.ratio(pathKubo, pathDirect); k.ok() {
			return factor * k.Median
		}
		return 0
	}
	panels := []panel{
		{title: "Throughput ÷ direct loopback TCP (higher is better)", floor: 1, bars: []bar{
			{label: "p2pd forward, 1 conn., TCP", s: tput1.ratio(pathP2PD, pathDirect), target: vsKubo(tput1, 1.5), color: colP2PD},
			{label: "p2pd forward, 1 conn., QUIC", s: tput1.ratio(pathP2PDQUIC, pathDirect), color: colQUIC},
			{label: "kubo p2p forward, 1 conn.", s: tput1.ratio(pathKubo, pathDirect), color: colKubo},
			{label: "reference tunnel, 1 conn.", s: tput1.ratio(pathRef, pathDirect), color: colRef},
			{label: "plain relay, 1 conn.", s: tput1.ratio(pathPlain, pathDirect), color: colPlain},
			{label: fmt.Sprintf("p2pd forward, %d conn., TCP", n), s: tputn.ratio(pathP2PD, pathDirect), target: vsKubo(tputn, 1.5), color: colP2PD},
			{label: fmt.Sprintf("p2pd forward, %d conn., QUIC", n), s: tputn.ratio(pathP2PDQUIC, pathDirect), color: colQUIC},
			{label: fmt.Sprintf("kubo p2p forward, %d conn.", n), s: tputn.ratio(pathKubo, pathDirect), color: colKubo},
			{label: fmt.Sprintf("reference tunnel, %d conn.", n), s: tputn.ratio(pathRef, pathDirect), color: colRef},
			{label: fmt.Sprintf("plain relay, %d conn.", n), s: tputn.ratio(pathPlain, pathDirect), color: colPlain},
		}},
		{title: "Latency ÷ direct loopback TCP (lower is better)", floor: 7, bars: []bar{
			{label: "p2pd, 64-byte round trip, TCP", s: rtt.ratio(pathP2PD, pathDirect), target: vsKubo(rtt, 0.6), color: colP2PD},
			{label: "p2pd, 64-byte round trip, QUIC", s: rtt.ratio(pathP2PDQUIC, pathDirect), color: colQUIC},
			{label: "kubo, 64-byte round trip", s: rtt.ratio(pathKubo, pathDirect), color: colKubo},
			{label: "reference, 64-byte round trip", s: rtt.ratio(pathRef, pathDirect), color: colRef},
			{label: "plain relay, 64-byte round trip", s: rtt.ratio(pathPlain, pathDirect), color: colPlain},
			{label: "p2pd, connect to first byte, TCP", s: conn.ratio(pathP2PD, pathDirect), target: vsKubo(conn, 0.6), color: colP2PD},
			{label: "p2pd, connect to first byte, QUIC", s: conn.ratio(pathP2PDQUIC, pathDirect), color: colQUIC},
			{label: "kubo, connect to first byte", s: conn.ratio(pathKubo, pathDirect), color: colKubo},
			{label: "reference, connect to first byte", s: conn.ratio(pathRef, pathDirect), color: colRef},
			{label: "plain relay, connect to first byte", s: conn.ratio(pathPlain, pathDirect), color: colPlain},
		}},
	}
	// kubo's rows, legend entry and targets only where kubo was measured.
	kubo := false
	for _, p := range panels {
		for _, b := range p.bars {
			kubo = kubo || b.color == colKubo && b.s.ok()
		}
	}
	if !kubo {
		for i := range panels {
			panels[i].bars = slices.DeleteFunc(panels[i].bars, func(b bar) bool { return b.color == colKubo })
		}
	}

	const (
		width   = 780
		left    = 250 // where bars start
		right   = 700 // where the scale ends
		rowH    = 26
		titleH  = 30
		axisH   = 26
		gap     = 18
		legendH = 40
	)
	var body strings.Builder
	y := 10
	for _, p := range panels {
		fmt.Fprintf(&body, `<text x="10" y="%d" class="title">%s</text>`+"\n", y+18, html.EscapeString(p.title))
		y += titleH
		scale := p.floor
		for _, b := range p.bars {
			if b.s.ok() {
				scale = max(scale, b.s.Max)
			}
			scale = max(scale, b.target)
		}
		scale = niceCeil(scale)
		x := func(v float64) float64 { return left + (right-left)*v/scale }
		rowsTop := y
		for _, b := range p.bars {
			mid := y + rowH/2
			fmt.Fprintf(&body, `<text x="%d" y="%d" class="label">%s</text>`+"\n", left-8, mid+4, html.EscapeString(b.label))
			if b.s.ok() {
				fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y+5, x(b.s.Median)-left, rowH-10, b.color)
				fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="whisker"/>`+"\n", x(b.s.Min), mid, x(b.s.Max), mid)
				for _, v := range []float64{b.s.Min, b.s.Max} {
					fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="whisker"/>`+"\n", x(v), mid-4, x(v), mid+4)
				}
				fmt.Fprintf(&body, `<text x="%.1f" y="%d" class="value">%s×</text>`+"\n", x(max(b.s.Max, b.target))+6, mid+4, num(b.s.Median))
			} else {
				fmt.Fprintf(&body, `<text x="%d" y="%d" class="value">not measured</text>`+"\n", left+4, mid+4)
			}
			if b.target > 0 {
				fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="target"/>`+"\n", x(b.target), y+1, x(b.target), y+rowH-1)
			}
			y += rowH
		}
		// Axis with ticks.
		fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`+"\n", left, rowsTop, left, y)
		fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`+"\n", left, y, right, y)
		step := tickStep(scale)
		for v := 0.0; v <= scale+1e-9; v += step {
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/>`+"\n", x(v), rowsTop, x(v), y)
			fmt.Fprintf(&body, `<text x="%.1f" y="%d" class="tick">%s×</text>`+"\n", x(v), y+16, trimFloat(v))
		}
		if v := 1.0; v <= scale {
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="one"/>`+"\n", x(v), rowsTop, x(v), y)
		}
		y += axisH + gap
	}
	// Legend.
	ly := y
	type legendItem struct {
		shape func(x int) string
		text  string
	}
	items := []legendItem{
		{func(x int) string { return swatch(x, ly, colP2PD) }, "p2pd over TCP"},
		{func(x int) string { return swatch(x, ly, colQUIC) }, "p2pd over QUIC"},
	}
	if kubo {
		items = append(items, legendItem{func(x int) string { return swatch(x, ly, colKubo) }, "kubo p2p forward"})
	}
	items = append(items,
		legendItem{func(x int) string { return swatch(x, ly, colRef) }, "reference tunnel"},
		legendItem{func(x int) string { return swatch(x, ly, colPlain) }, "plain relay (no encryption)"},
		legendItem{func(x int) string {
			return fmt.Sprintf(`<line x1="%d" y1="%d" x2="%d" y2="%d" class="whisker"/>`, x, ly+5, x+14, ly+5)
		}, "min–max"},
	)
	if kubo {
		items = append(items, legendItem{func(x int) string {
			return fmt.Sprintf(`<line x1="%d" y1="%d" x2="%d" y2="%d" class="target"/>`, x+7, ly-2, x+7, ly+12)
		}, "target (1.5× kubo's throughput, 0.6× its latency)"})
	}
	lx := 10
	for _, it := range items {
		if w := 20 + 7*len([]rune(it.text)); lx > 10 && lx+w > width-10 { // wrap
			lx, ly, y = 10, ly+20, y+20
		}
		fmt.Fprintf(&body, "%s\n<text x=\"%d\" y=\"%d\" class=\"legend\">%s</text>\n", it.shape(lx), lx+20, ly+10, html.EscapeString(it.text))
		lx += 20 + 7*len([]rune(it.text)) + 18
	}
	y += legendH - 10
	fmt.Fprintf(&body, `<text x="10" y="%d" class="note">%s</text>`+"\n", y,
		html.EscapeString(fmt.Sprintf("%s, %d cores; %s; medians over %d alternating repetitions",
			res.Machine.CPU, res.Machine.Cores, res.Started.Format("2006-01-02"), res.Settings.Reps)))
	y += 12

	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		width, y, width, y)
	out.WriteString(`<style>
.title{font-size:15px;font-weight:bold;fill:#222}
.label{font-size:12px;fill:#222;text-anchor:end}
.value{font-size:12px;fill:#222}
.tick{font-size:11px;fill:#555;text-anchor:middle}
.legend{font-size:12px;fill:#222}
.note{font-size:11px;fill:#666}
.axis{stroke:#444;stroke-width:1}
.grid{stroke:#ddd;stroke-width:1}
.one{stroke:#444;stroke-width:1;stroke-dasharray:2,2}
.whisker{stroke:#111;stroke-width:1.5}
.target{stroke:#d62728;stroke-width:2.5}
</style>
<rect width="100%" height="100%" fill="white"/>
`)
	out.WriteString(body.String())
	out.WriteString("</svg>\n")
	return out.String()
}

func swatch(x, y int, color string) string {
	return fmt.Sprintf(`<rect x="%d" y="%d" width="14" height="10" fill="%s"/>`, x, y, color)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (halves below 2).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p+1e-12 {
			return m * p
		}
	}
	return 10 * p
}

// tickStep picks a step giving 4 to 10 ticks over [0, scale].
func tickStep(scale float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(scale)))
	for _, m := range []float64{0.1, 0.2, 0.25, 0.5, 1, 2} {
		if scale/(m*p) <= 10 {
			return m * p
		}
	}
	return 2 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
