package series

import "bufio"

// Write renders the snapshot's families in format, as expfmt renders (or,
// in protobuf, client_golang encodes) the same families gathered from
// Collect: the tests compare them. Series come in creation order, families
// sorted by name.
func (snap *Snapshot) Write(w *bufio.Writer, format Format) error {
	wr := NewWriter(w, format)
	snap.WriteTo(wr)
	return wr.Close()
}

// WriteTo writes the snapshot's families with wr (the caller closes it).
func (snap *Snapshot) WriteTo(wr *Writer) {
	for i := range snap.fams {
		fs := &snap.fams[i]
		f := fs.f
		if len(fs.series) == 0 {
			continue
		}
		wr.Family(f.name, f.help, f.kind)
		for j, se := range fs.series {
			released := j < fs.released
			if f.kind == Counter {
				v := 0.0
				if released {
					v = fs.values[j]
				}
				wr.counter(f, se, v)
				continue
			}
			var h histSnapshot
			if released {
				h = fs.hists[j]
			}
			wr.histogram(f, se, &h, released)
		}
	}
}
