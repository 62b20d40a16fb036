package mysql

import (
	"github.com/flowline/flowline/plugins/common/spool"
)

// The buffer between Write and the flusher is a plugins/common/spool of
// rows: memory first (buffer_rows), then one spool file per Write
// (spool_size), in order, surviving a restart. A chunk's tag is the refresh
// time of its rows, so that the flusher gets one refresh at a time and
// writes it in one sorted transaction.
type (
	buffer = spool.Spool[row]
	chunk  = spool.Chunk[row]
)

// spoolMagic starts every spool file of this output (the file format of
// earlier versions, so their spool files are still read).
const spoolMagic = "FLMYSQL1"

// newBuffer returns the output's buffer on dir ("" for memory only).
func newBuffer(dir string, maxRows int, maxSpool int64) *buffer {
	return spool.New(spool.Config[row]{Dir: dir, Magic: spoolMagic, Ext: ".rows",
		MaxItems: maxRows, MaxBytes: maxSpool, Codec: rowCodec{}})
}

// rowCodec encodes rows for the spool files with appendRow and decodeRow.
type rowCodec struct{}

func (rowCodec) Append(dst []byte, rows []row) []byte {
	for i := range rows {
		dst = appendRow(dst, &rows[i])
	}
	return dst
}

func (rowCodec) Decode(p []byte, n int) ([]row, error) {
	rows := make([]row, n)
	var err error
	for i := range rows {
		if p, err = decodeRow(p, &rows[i]); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// rowsTag is the tag of a chunk of rows: their refresh time (all rows of
// one Write share it).
func rowsTag(rows []row) int64 {
	if len(rows) == 0 {
		return 0
	}
	return rows[0].Updated
}
