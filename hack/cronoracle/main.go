// Command cronoracle answers, for cron expressions read as JSON lines on
// stdin, what the Kubernetes CronJob API and controller make of them: whether
// the API server accepts the schedule, and the next fire times after given
// instants. cronfleet's differential test compares its own parser with it.
//
// Input, one object a line:  {"expr": "0 9 * * MON-FRI", "zone": "Europe/Berlin", "after": ["2026-03-29T00:30:00Z"]}
// Output, one object a line: {"valid": true, "error": "", "next": [["2026-03-30T07:00:00Z", ...]]}
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// fireTimes is how many fire times are reported after each instant.
const fireTimes = 6

type request struct {
	Expr  string   `json:"expr"`
	Zone  string   `json:"zone"`
	After []string `json:"after"`
}

type answer struct {
	Valid bool        `json:"valid"`
	Error string      `json:"error"`
	Next  [][]*string `json:"next"`
}

// validate is k8s.io/kubernetes pkg/apis/batch/validation validateScheduleFormat
// for a new CronJob: robfig's standard parser, and no "TZ" anywhere in the
// schedule (the time zone belongs in spec.timeZone).
func validate(expr string) (cron.Schedule, error) {
	// Checked first: robfig's parser panics on a "TZ=" prefix without a space.
	if strings.Contains(expr, "TZ") {
		return nil, fmt.Errorf("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
	}
	return cron.ParseStandard(expr)
}

func answerFor(req request) (answer, error) {
	out := answer{Next: [][]*string{}}
	schedule, err := validate(req.Expr)
	if err != nil {
		out.Error = err.Error()
		return out, nil
	}
	out.Valid = true
	loc, err := time.LoadLocation(req.Zone)
	if err != nil {
		return out, fmt.Errorf("zone %q: %w", req.Zone, err)
	}
	for _, after := range req.After {
		start, err := time.Parse(time.RFC3339Nano, after)
		if err != nil {
			return out, fmt.Errorf("instant %q: %w", after, err)
		}
		// As the CronJob controller does: the schedule is evaluated in the
		// CronJob's zone, each fire time counted from the previous one.
		moment := start.In(loc)
		times := make([]*string, 0, fireTimes)
		for range fireTimes {
			moment = schedule.Next(moment)
			if moment.IsZero() {
				// No fire time within robfig's five-year search.
				times = append(times, nil)
				break
			}
			text := moment.UTC().Format(time.RFC3339)
			times = append(times, &text)
		}
		out.Next = append(out.Next, times)
	}
	return out, nil
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	writer := bufio.NewWriter(os.Stdout)
	defer writer.Flush()
	encoder := json.NewEncoder(writer)
	for scanner.Scan() {
		var req request
		if err := json.Unmarshal(scanner.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "cronoracle: bad input line: %v\n", err)
			os.Exit(2)
		}
		out, err := answerFor(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cronoracle: %v\n", err)
			os.Exit(2)
		}
		if err := encoder.Encode(out); err != nil {
			fmt.Fprintf(os.Stderr, "cronoracle: %v\n", err)
			os.Exit(2)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "cronoracle: %v\n", err)
		os.Exit(2)
	}
}
