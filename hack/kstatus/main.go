// Command kstatus prints the kstatus verdict (sigs.k8s.io/cli-utils/pkg/kstatus/status)
// of each Kubernetes object it reads, the verdict Flux health checks, kpt and
// `kubectl wait`-style tools reach, so the tests can hold the operator's
// status conditions to that library rather than to a re-implementation of it.
//
// Input on stdin: JSON objects, one after another (one per line, as
// `kubectl get -o json` of several objects, or pretty-printed), where an
// object of kind List (or *List) stands for its items. Output on stdout: one
// JSON line per object:
//
//	{"kind":"Schedule","namespace":"ns","name":"nightly","status":"Current","message":"Resource is Ready"}
//
// `kstatus -version` prints the cli-utils version it was built with.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const cliUtils = "sigs.k8s.io/cli-utils"

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	version := flag.Bool("version", false, "print the cli-utils version and exit")
	flag.Parse()
	if *version {
		fmt.Println(cliUtilsVersion())
		return
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(bufio.NewReader(in))
	// Integers stay int64 (as the API machinery decodes them), otherwise
	// generation and observedGeneration would be float64 and kstatus's
	// NestedInt64 lookups would fail.
	decoder.UseNumber()
	writer := bufio.NewWriter(out)
	defer writer.Flush()
	encoder := json.NewEncoder(writer)
	for {
		var raw map[string]any
		err := decoder.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading objects: %w", err)
		}
		for _, object := range expand(raw) {
			if err := encoder.Encode(compute(object)); err != nil {
				return err
			}
		}
	}
}

// expand turns a List into its items and leaves any other object alone.
func expand(raw map[string]any) []map[string]any {
	kind, _ := raw["kind"].(string)
	items, isList := raw["items"].([]any)
	if !isList || !strings.HasSuffix(kind, "List") {
		return []map[string]any{raw}
	}
	objects := make([]map[string]any, 0, len(items))
	for _, item := range items {
		if object, ok := item.(map[string]any); ok {
			objects = append(objects, object)
		}
	}
	return objects
}

func compute(raw map[string]any) verdict {
	object := &unstructured.Unstructured{Object: normalize(raw).(map[string]any)}
	result := verdict{
		Kind:      object.GetKind(),
		Namespace: object.GetNamespace(),
		Name:      object.GetName(),
	}
	computed, err := status.Compute(object)
	if err != nil {
		// The library returns no result for a malformed object; say so in
		// its own vocabulary instead of failing the whole stream.
		result.Status = string(status.UnknownStatus)
		result.Message = err.Error()
		return result
	}
	result.Status = string(computed.Status)
	result.Message = computed.Message
	return result
}

// normalize converts json.Number to int64 or float64, the types
// unstructured content holds after the API machinery decodes it.
func normalize(value any) any {
	switch typed := value.(type) {
	case map[string]any:
		for key, item := range typed {
			typed[key] = normalize(item)
		}
		return typed
	case []any:
		for index, item := range typed {
			typed[index] = normalize(item)
		}
		return typed
	case json.Number:
		if integer, err := typed.Int64(); err == nil {
			return integer
		}
		if number, err := typed.Float64(); err == nil {
			return number
		}
		return typed.String()
	default:
		return value
	}
}

func cliUtilsVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dependency := range info.Deps {
		if dependency.Path == cliUtils {
			return dependency.Version
		}
	}
	return "unknown"
}
