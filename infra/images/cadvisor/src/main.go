// cadvisor-metrics: cAdvisor's container metrics for Prometheus, built on cAdvisor's library.
//
// cAdvisor's own command (github.com/google/cadvisor/cmd) is a module that the Go module proxy
// does not serve, and it keeps its HTTP handlers in internal packages; this is the part of it the
// stack uses: the container manager with the Docker provider, and /metrics and /healthz on :8080.
// Flags are cAdvisor's own (-docker_only, -housekeeping_interval, ...).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/cadvisor/cache/memory"
	"github.com/google/cadvisor/container"
	v2 "github.com/google/cadvisor/info/v2"
	"github.com/google/cadvisor/manager"
	"github.com/google/cadvisor/metrics"
	"github.com/google/cadvisor/utils/sysfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	// The container providers recsite's stack runs on.
	_ "github.com/google/cadvisor/container/docker/install"
)

var (
	port       = flag.Int("port", 8080, "port to listen on")
	storageAge = flag.Duration("storage_duration", 2*time.Minute, "how long stats are kept in memory")
	// What the stack's dashboards and bench-stack read: CPU, memory, network, disk I/O.
	enabled = "cpu,memory,network,diskIO"
)

func main() {
	klog.InitFlags(nil)
	flag.Parse()
	var included container.MetricSet = container.MetricSet{}
	if err := included.Set(enabled); err != nil {
		klog.Fatalf("metrics %q: %v", enabled, err)
	}
	resources, err := manager.New(memory.New(*storageAge, nil), sysfs.NewRealSysFs(), manager.HousekeepingConfigFlags,
		included, http.DefaultClient, strings.Split("", ","), strings.Split("", ","), "", 0)
	if err != nil {
		klog.Fatalf("cannot create the container manager: %v", err)
	}
	registry := prometheus.NewRegistry()
	options := v2.RequestOptions{IdType: v2.TypeName, Count: 1, Recursive: true}
	registry.MustRegister(
		metrics.NewPrometheusCollector(resources, metrics.DefaultContainerLabels, included, clock.RealClock{}, options),
		metrics.NewPrometheusMachineCollector(resources, included),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if err := resources.Start(); err != nil {
		klog.Fatalf("cannot start the container manager: %v", err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		_ = resources.Stop()
		os.Exit(0)
	}()
	klog.Infof("cadvisor-metrics on :%d", *port)
	klog.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), mux))
}
