// Command nodeprobe is the only program the real local node needs an image
// for, since no registry is reachable: it is the pause container of every
// pod sandbox, and the container the node's smoke test runs.
//
//	nodeprobe                  wait for SIGTERM or SIGINT, like the pause container
//	nodeprobe report CODE      write what the container may do, as JSON, to the
//	                           termination-message file and exit with CODE
//	nodeprobe apiserver        GET /version from the API server the way an
//	                           in-cluster client finds it (KUBERNETES_SERVICE_HOST
//	                           and _PORT, the ServiceAccount's token and CA), and
//	                           write the outcome to the termination-message file
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

const terminationLog = "/dev/termination-log"

// report is what a restricted pod's security context should have produced.
type report struct {
	UID          int    `json:"uid"`
	GID          int    `json:"gid"`
	RootWritable bool   `json:"rootWritable"`
	CapEff       string `json:"capEff"`
	Seccomp      string `json:"seccomp"`
	NoNewPrivs   string `json:"noNewPrivs"`
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "report" {
		code, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "nodeprobe: exit code %q is not an integer\n", os.Args[2])
			os.Exit(64)
		}
		os.Exit(writeReport(code))
	}
	if len(os.Args) == 2 && os.Args[1] == "apiserver" {
		os.Exit(callAPIServer())
	}
	// PID 1 of a container ignores signals it does not handle, so the pause
	// container must ask for them to stop promptly.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
}

func writeReport(code int) int {
	status := procStatus()
	probe := report{
		UID:          os.Getuid(),
		GID:          os.Getgid(),
		RootWritable: rootWritable(),
		CapEff:       status["CapEff"],
		Seccomp:      status["Seccomp"],
		NoNewPrivs:   status["NoNewPrivs"],
	}
	encoded, err := json.Marshal(probe)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 70
	}
	fmt.Println(string(encoded))
	if err := os.WriteFile(terminationLog, encoded, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 70
	}
	return code
}

func rootWritable() bool {
	file, err := os.Create("/nodeprobe-write-test")
	if err != nil {
		return false
	}
	file.Close()
	os.Remove("/nodeprobe-write-test")
	return true
}

func procStatus() map[string]string {
	fields := map[string]string{}
	file, err := os.Open("/proc/self/status")
	if err != nil {
		return fields
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		name, value, found := strings.Cut(scanner.Text(), ":")
		if found {
			fields[name] = strings.TrimSpace(value)
		}
	}
	return fields
}

// apiCall is the outcome of an in-cluster request to the API server.
type apiCall struct {
	URL        string `json:"url"`
	StatusCode int    `json:"statusCode"`
	GitVersion string `json:"gitVersion,omitempty"`
	Error      string `json:"error,omitempty"`
}

func callAPIServer() int {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	call := apiCall{URL: "https://" + net.JoinHostPort(host, port) + "/version"}
	call.StatusCode, call.GitVersion, call.Error = getVersion(call.URL)
	encoded, _ := json.Marshal(call)
	fmt.Println(string(encoded))
	if err := os.WriteFile(terminationLog, encoded, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if call.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func getVersion(url string) (int, string, string) {
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return 0, "", err.Error()
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return 0, "", err.Error()
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err.Error()
	}
	request.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	response, err := client.Do(request)
	if err != nil {
		return 0, "", err.Error()
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	var version struct {
		GitVersion string `json:"gitVersion"`
	}
	_ = json.Unmarshal(body, &version)
	return response.StatusCode, version.GitVersion, ""
}
