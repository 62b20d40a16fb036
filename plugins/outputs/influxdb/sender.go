package influxdb

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Backoff bounds of the sender's retries when the server gives no
// Retry-After.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 10 * time.Second
	// maxRetryAfter caps a server's Retry-After, so that a wrong header
	// cannot park the output for hours.
	maxRetryAfter = 5 * time.Minute
)

// errStopping says the sender was cancelled (Close ran out of time).
var errStopping = errors.New("stopping")

// sender posts the spool's points, oldest first, until Close.
func (o *InfluxDB) sender(ctx context.Context) {
	defer close(o.done)
	stopping := false
	s := &request{o: o}
	for ctx.Err() == nil {
		if !stopping {
			select {
			case <-o.stop:
				stopping = true
			default:
			}
		}
		group := o.buf.PeekReadable(o.BatchSize, func(n int, err error) {
			o.log.Error("spool file unreadable: set aside as *.bad, its points are lost", "points", n, "err", err)
			o.m.dropped.Add(float64(n))
		})
		if len(group) == 0 {
			if stopping {
				return
			}
			select {
			case <-o.buf.Notify():
			case <-o.stop:
				stopping = true
			case <-ctx.Done():
			}
			continue
		}
		var lines [][]byte
		for _, c := range group {
			lines = append(lines, c.Items...)
		}
		for off := 0; off < len(lines) && ctx.Err() == nil; off += o.BatchSize {
			if s.send(ctx, lines[off:min(off+o.BatchSize, len(lines))]) != nil {
				break
			}
		}
		if ctx.Err() != nil {
			return // Close spills what is left; resending it later is harmless
		}
		o.buf.Commit(group)
		o.updateGauges()
	}
}

// request builds and posts write requests, reusing its buffers.
type request struct {
	o    *InfluxDB
	body bytes.Buffer
	zbuf bytes.Buffer
	gz   *gzip.Writer
}

// send posts lines until the server took them (or refused them as bad, or a
// single line as too large): it returns nil then, and errStopping when ctx
// ended first.
func (s *request) send(ctx context.Context, lines [][]byte) error {
	o := s.o
	backoff := minBackoff
	for {
		perr := s.post(ctx, lines)
		if ctx.Err() != nil {
			return errStopping
		}
		if perr == nil {
			o.m.written.Add(float64(len(lines)))
			o.m.requests.Inc()
			return nil
		}
		wait := backoff
		switch perr.StatusCode {
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			n := rejectedCount(perr.Message, len(lines))
			o.m.rejected.Add(float64(n))
			o.m.written.Add(float64(len(lines) - n))
			o.rejectLog.Log(slog.LevelError, "server refused points as bad: counted as rejected, not retried", "status", perr.StatusCode, "points", n, "of", len(lines), "server", serverMessage(perr))
			return nil
		case http.StatusRequestEntityTooLarge:
			if len(lines) == 1 {
				o.m.rejected.Inc()
				o.rejectLog.Log(slog.LevelError, "server refused a single point as too large: counted as rejected", "bytes", len(lines[0]), "server", serverMessage(perr))
				return nil
			}
			half := len(lines) / 2
			o.log.Debug("request too large: splitting", "points", len(lines))
			if err := s.send(ctx, lines[:half]); err != nil {
				return err
			}
			return s.send(ctx, lines[half:])
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			if perr.RetryAfter > 0 {
				wait = min(time.Duration(perr.RetryAfter)*time.Second, maxRetryAfter)
			}
			o.errLog.Log(slog.LevelWarn, "server busy: retrying after its Retry-After", "status", perr.StatusCode, "retry_in", wait, "server", serverMessage(perr))
		case http.StatusUnauthorized, http.StatusForbidden:
			o.errLog.Log(slog.LevelError, "server refused the token: check token (InfluxDB 1.8: \"user:password\"); points stay buffered", "status", perr.StatusCode, "server", serverMessage(perr))
		case http.StatusNotFound:
			o.errLog.Log(slog.LevelError, "bucket or organization not found: create it or fix bucket/organization; points stay buffered", "bucket", o.Bucket, "server", serverMessage(perr))
		default:
			o.errLog.Log(slog.LevelWarn, "write failed; points stay buffered and are retried", "points", len(lines), "retry_in", wait, "err", perr)
		}
		o.m.retries.Inc()
		if wait == backoff {
			backoff = min(2*backoff, maxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errStopping
		}
		// While stopping, keep trying until Close's deadline cancels ctx.
	}
}

// post sends one request.
func (s *request) post(ctx context.Context, lines [][]byte) *influxhttp.Error {
	o := s.o
	s.body.Reset()
	for _, l := range lines {
		s.body.Write(l)
	}
	payload := s.body.Bytes()
	if o.gzip {
		s.zbuf.Reset()
		if s.gz == nil {
			s.gz, _ = gzip.NewWriterLevel(&s.zbuf, gzip.BestSpeed)
		} else {
			s.gz.Reset(&s.zbuf)
		}
		s.gz.Write(payload)
		s.gz.Close()
		payload = s.zbuf.Bytes()
	}
	return o.svc.DoPostRequest(ctx, o.writeURL, bytes.NewReader(payload), func(req *http.Request) {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if o.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
	}, func(resp *http.Response) error {
		resp.Body.Close()
		return nil
	})
}

// droppedRe finds InfluxDB 1.x's count of refused points in a partial write.
var droppedRe = regexp.MustCompile(`dropped=(\d+)`)

// rejectedCount is how many of n points the server refused: the count a
// partial write reports, else all of them.
func rejectedCount(msg string, n int) int {
	if m := droppedRe.FindStringSubmatch(msg); m != nil {
		if d, err := strconv.Atoi(m[1]); err == nil && d >= 0 && d <= n {
			return d
		}
	}
	return n
}

// serverMessage is the server's own words for an error response.
func serverMessage(e *influxhttp.Error) string {
	if e.Message != "" {
		return e.Message
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Code
}
