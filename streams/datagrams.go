package streams

// DatagramCounts are the counters of a bridge whose local connection carries
// datagrams rather than a byte stream (a UDP flow): how many whole datagrams
// went each way and how many were dropped. Bytes count datagram payloads,
// without the framing the flow adds on the stream.
type DatagramCounts struct {
	In       uint64 // datagrams from the peer delivered to the local side
	Out      uint64 // datagrams from the local side sent to the peer
	Dropped  uint64 // datagrams dropped either way (queue full, too large, send failed)
	BytesIn  uint64 // payload bytes of In
	BytesOut uint64 // payload bytes of Out
}

// DatagramConn is implemented by local connections that carry datagrams. The
// Info of a stream bridged to one carries its counts (Info.Datagrams), and
// its BytesIn and BytesOut are the datagrams' payload bytes.
type DatagramConn interface {
	DatagramCounts() DatagramCounts
}

// fillDatagrams sets info's datagram counters from c, if c carries
// datagrams.
func fillDatagrams(info *Info, c any) {
	dc, ok := c.(DatagramConn)
	if !ok {
		return
	}
	d := dc.DatagramCounts()
	info.Datagrams = &d
	info.BytesIn, info.BytesOut = d.BytesIn, d.BytesOut
}
