// docker-machine-driver-labplug: a docker-machine driver plugin for hoist's tests, written with Go's
// standard library only. It serves libmachine's plugin protocol exactly as
// libmachine/drivers/plugin.RegisterDriver does (net/rpc over HTTP, encoding/gob, the
// RPCServerDriver and RpcServerDriver services, the same registered gob names, a 10 s heartbeat
// timeout, exit on Close), and its machines are lab hosts: Create hands back a lab host's address
// and a key it trusts; Stop, Start, Kill and Restart act on the lab host through lab/lab.
//
// LABPLUG_MODE makes it misbehave on purpose: no-address, exit-early, api-version-2, v0-only,
// crash-in-create, slow-create, slow-state, fail-remove. LABPLUG_PIDFILE names a file it writes its pid to;
// LABPLUG_STATE_DELAY (a Go duration) makes GetState take that long, LABPLUG_VERSION_DELAY GetVersion (as
// a plugin on a loaded machine might). GetState says on stderr that it was asked.
//
// `docker-machine-driver-labplug gob-echo` instead reads gob values on stdin and writes others on
// stdout, so that hoist's gob codec is checked against Go's own in both directions.
package main

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ---- libmachine's types, under the names libmachine registers them with gob.

type Flag interface {
	String() string
	Default() interface{}
}

type StringFlag struct{ Name, Usage, EnvVar, Value string }
type StringSliceFlag struct {
	Name, Usage, EnvVar string
	Value               []string
}
type IntFlag struct {
	Name, Usage, EnvVar string
	Value               int
}
type BoolFlag struct{ Name, Usage, EnvVar string }

func (f StringFlag) String() string            { return f.Name }
func (f StringFlag) Default() interface{}      { return f.Value }
func (f StringSliceFlag) String() string       { return f.Name }
func (f StringSliceFlag) Default() interface{} { return f.Value }
func (f IntFlag) String() string               { return f.Name }
func (f IntFlag) Default() interface{}         { return f.Value }
func (f BoolFlag) String() string              { return f.Name }
func (f BoolFlag) Default() interface{}        { return nil }

type DriverOptions interface {
	String(key string) string
	StringSlice(key string) []string
	Int(key string) int
	Bool(key string) bool
}

type RPCFlags struct{ Values map[string]interface{} }

func (r RPCFlags) String(key string) string        { s, _ := r.Values[key].(string); return s }
func (r RPCFlags) StringSlice(key string) []string { s, _ := r.Values[key].([]string); return s }
func (r RPCFlags) Int(key string) int              { i, _ := r.Values[key].(int); return i }
func (r RPCFlags) Bool(key string) bool            { b, _ := r.Values[key].(bool); return b }

func init() {
	gob.RegisterName("*rpcdriver.RPCFlags", &RPCFlags{})
	gob.RegisterName("*mcnflag.IntFlag", &IntFlag{})
	gob.RegisterName("*mcnflag.StringFlag", &StringFlag{})
	gob.RegisterName("*mcnflag.StringSliceFlag", &StringSliceFlag{})
	gob.RegisterName("*mcnflag.BoolFlag", &BoolFlag{})
}

// ---- the driver.

// Driver is the machine's driver config; its JSON is what hoist keeps in config.json.
type Driver struct {
	IPAddress      string
	MachineName    string
	SSHUser        string
	SSHPort        int
	SSHKeyPath     string
	StorePath      string
	SwarmMaster    bool
	SwarmHost      string
	SwarmDiscovery string
	EnginePort     int
	LabHost        string
	LabTool        string
	SourceKey      string
	Tags           []string
	FailPreCreate  bool
}

func (d *Driver) run(args ...string) (string, error) {
	if d.LabTool == "" || d.LabHost == "" {
		return "", errors.New("labplug: this machine has no --labplug-lab-tool and --labplug-host")
	}
	out, err := exec.Command(d.LabTool, append([]string{args[0], d.LabHost}, args[1:]...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("labplug: lab %s %s: %v: %s", args[0], d.LabHost, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// state: the lab host's container state where a lab tool is given, else whether SSH answers.
func (d *Driver) state() int {
	if d.LabTool != "" && d.LabHost != "" {
		out, err := d.run("state")
		switch {
		case err != nil:
			return 7 // Error
		case out == "running":
			return 1
		default:
			return 4 // Stopped
		}
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(d.IPAddress, fmt.Sprint(d.SSHPort)), 5*time.Second)
	if err != nil {
		return 4
	}
	c.Close()
	return 1
}

func (d *Driver) keyPath() string {
	return filepath.Join(d.StorePath, "machines", d.MachineName, "id_rsa")
}

// ---- the RPC service (libmachine's RPCServerDriver method set).

type Server struct {
	d         *Driver
	heartbeat chan bool
	closing   chan bool
	mode      string
}

type none = struct{}

func (s *Server) Close(_ *none, _ *none) error     { s.closing <- true; return nil }
func (s *Server) Heartbeat(_ *none, _ *none) error { s.heartbeat <- true; return nil }
func (s *Server) GetVersion(_ *none, v *int) error {
	if delay, err := time.ParseDuration(os.Getenv("LABPLUG_VERSION_DELAY")); err == nil {
		time.Sleep(delay)
	}
	*v = 1
	if s.mode == "api-version-2" {
		*v = 2
	}
	return nil
}
func (s *Server) GetConfigRaw(_ *none, data *[]byte) error {
	b, err := json.Marshal(s.d)
	*data = b
	return err
}
func (s *Server) SetConfigRaw(data []byte, _ *none) error { return json.Unmarshal(data, s.d) }
func (s *Server) GetCreateFlags(_ *none, flags *[]Flag) error {
	*flags = []Flag{
		StringFlag{Name: "labplug-ip", Usage: "IP address of the lab host", EnvVar: "LABPLUG_IP"},
		StringFlag{Name: "labplug-ssh-key", Usage: "SSH private key the lab host trusts", EnvVar: "LABPLUG_SSH_KEY"},
		StringFlag{Name: "labplug-ssh-user", Usage: "SSH user", EnvVar: "LABPLUG_SSH_USER", Value: "root"},
		StringFlag{Name: "labplug-host", Usage: "Name of the lab host (for stop, start, kill, restart)", EnvVar: "LABPLUG_HOST"},
		StringFlag{Name: "labplug-lab-tool", Usage: "Path of lab/lab", EnvVar: "LABPLUG_LAB_TOOL"},
		IntFlag{Name: "labplug-engine-port", Usage: "Docker engine port", EnvVar: "LABPLUG_ENGINE_PORT", Value: 2376},
		StringSliceFlag{Name: "labplug-tag", Usage: "A tag (repeatable)", Value: []string{"lab"}},
		BoolFlag{Name: "labplug-fail-precreate", Usage: "Fail the pre-create check"},
	}
	return nil
}
func (s *Server) SetConfigFromFlags(opts *DriverOptions, _ *none) error {
	o := *opts
	d := s.d
	d.IPAddress = o.String("labplug-ip")
	d.SourceKey = o.String("labplug-ssh-key")
	d.SSHUser = o.String("labplug-ssh-user")
	d.LabHost = o.String("labplug-host")
	d.LabTool = o.String("labplug-lab-tool")
	d.EnginePort = o.Int("labplug-engine-port")
	d.Tags = o.StringSlice("labplug-tag")
	d.FailPreCreate = o.Bool("labplug-fail-precreate")
	d.SwarmMaster = o.Bool("swarm-master")
	d.SwarmHost = o.String("swarm-host")
	d.SSHPort = 22
	if d.IPAddress == "" {
		return errors.New("labplug driver requires the --labplug-ip option")
	}
	return nil
}
func (s *Server) PreCreateCheck(_ *none, _ *none) error {
	if s.d.FailPreCreate {
		return errors.New("labplug: the pre-create check failed as asked")
	}
	if _, err := os.Stat(s.d.SourceKey); err != nil {
		return fmt.Errorf("labplug: SSH key %q: %v", s.d.SourceKey, err)
	}
	return nil
}
func (s *Server) Create(_ *none, _ *none) error {
	fmt.Println("Creating lab machine on", s.d.IPAddress)
	switch s.mode {
	case "crash-in-create":
		fmt.Fprintln(os.Stderr, "labplug: out of cheese")
		fmt.Println("the plugin is about to crash")
		os.Exit(2)
	case "slow-create":
		fmt.Println("taking my time")
		time.Sleep(120 * time.Second)
	}
	key, err := os.ReadFile(s.d.SourceKey)
	if err != nil {
		return err
	}
	s.d.SSHKeyPath = s.d.keyPath()
	if err := os.MkdirAll(filepath.Dir(s.d.SSHKeyPath), 0700); err != nil {
		return err
	}
	return os.WriteFile(s.d.SSHKeyPath, key, 0600)
}
func (s *Server) DriverName(_ *none, n *string) error     { *n = "labplug"; return nil }
func (s *Server) GetMachineName(_ *none, n *string) error { *n = s.d.MachineName; return nil }
func (s *Server) GetSSHHostname(_ *none, h *string) error { *h = s.d.IPAddress; return nil }
func (s *Server) GetSSHKeyPath(_ *none, p *string) error  { *p = s.d.SSHKeyPath; return nil }
func (s *Server) GetSSHPort(_ *none, p *int) error        { *p = s.d.SSHPort; return nil }
func (s *Server) GetSSHUsername(_ *none, u *string) error { *u = s.d.SSHUser; return nil }
func (s *Server) GetState(_ *none, st *int) error {
	if s.mode == "slow-state" {
		time.Sleep(60 * time.Second)
	}
	fmt.Fprintln(os.Stderr, "labplug: asked for the state of", s.d.MachineName)
	if delay, err := time.ParseDuration(os.Getenv("LABPLUG_STATE_DELAY")); err == nil {
		time.Sleep(delay)
	}
	*st = s.d.state()
	return nil
}
func (s *Server) GetIP(_ *none, ip *string) error {
	if s.d.IPAddress == "" {
		return errors.New("IP address is not set")
	}
	*ip = s.d.IPAddress
	return nil
}
func (s *Server) GetURL(_ *none, u *string) error {
	if s.d.state() != 1 {
		return errors.New("Host is not running")
	}
	*u = "tcp://" + net.JoinHostPort(s.d.IPAddress, fmt.Sprint(s.d.EnginePort))
	return nil
}
func (s *Server) Start(_ *none, _ *none) error {
	fmt.Println("Starting lab host", s.d.LabHost)
	_, err := s.d.run("start")
	return err
}
func (s *Server) Stop(_ *none, _ *none) error    { _, err := s.d.run("stop"); return err }
func (s *Server) Kill(_ *none, _ *none) error    { _, err := s.d.run("kill"); return err }
func (s *Server) Restart(_ *none, _ *none) error { _, err := s.d.run("reboot"); return err }
func (s *Server) Remove(_ *none, _ *none) error {
	if s.mode == "fail-remove" {
		return errors.New("labplug: remove failed as asked")
	}
	fmt.Println("Removing lab machine", s.d.MachineName)
	return nil
}

// ---- RegisterDriver, as libmachine does it.

func main() {
	if len(os.Args) > 1 && os.Args[1] == "gob-echo" {
		gobEcho()
		return
	}
	driverName := "labplug"
	if filepath.Base(os.Args[0]) == "docker-machine" {
		// Standing in for a docker-machine binary that serves its core drivers.
		driverName = os.Getenv("MACHINE_PLUGIN_DRIVER_NAME")
		if driverName != "digitalocean" {
			fmt.Fprintf(os.Stderr, "Unsupported driver: %s\n", driverName)
			os.Exit(1)
		}
	}
	if os.Getenv("MACHINE_PLUGIN_TOKEN") != "42" {
		fmt.Fprint(os.Stderr, "This is a Docker Machine plugin binary.\nPlugin binaries are not intended to be invoked directly.\nPlease use this plugin through the main 'docker-machine' binary.\n(API version: 1)\n")
		os.Exit(1)
	}
	if p := os.Getenv("LABPLUG_PIDFILE"); p != "" {
		os.WriteFile(p, []byte(fmt.Sprint(os.Getpid())), 0644)
	}
	mode := os.Getenv("LABPLUG_MODE")
	switch mode {
	case "no-address":
		time.Sleep(60 * time.Second)
		os.Exit(1)
	case "exit-early":
		fmt.Fprintln(os.Stderr, "labplug: cannot start: exit-early mode")
		os.Exit(1)
	}
	s := &Server{d: &Driver{SSHUser: "root", SSHPort: 22, EnginePort: 2376}, heartbeat: make(chan bool), closing: make(chan bool), mode: mode}
	_ = driverName
	if mode != "v0-only" {
		rpc.RegisterName("RPCServerDriver", s)
	}
	rpc.RegisterName("RpcServerDriver", s)
	rpc.HandleHTTP()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr())
	go http.Serve(l, nil)
	for {
		select {
		case <-s.closing:
			os.Exit(0)
		case <-s.heartbeat:
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "labplug: no heartbeat for 10s, exiting")
			os.Exit(1)
		}
	}
}

// gobEcho reads what hoist sends a plugin (a DriverOptions holding RPCFlags, a []byte, an empty
// struct) and answers with what a plugin sends (a []Flag of every kind, the RPCFlags it decoded,
// the bytes, an int, a string), all through Go's own encoding/gob.
func gobEcho() {
	dec := gob.NewDecoder(os.Stdin)
	enc := gob.NewEncoder(os.Stdout)
	var opts DriverOptions
	var raw []byte
	var empty struct{}
	must(dec.Decode(&opts))
	must(dec.Decode(&raw))
	must(dec.Decode(&empty))
	var flags []Flag
	(&Server{}).GetCreateFlags(nil, &flags)
	must(enc.Encode(&flags))
	must(enc.Encode(&opts))
	must(enc.Encode(raw))
	must(enc.Encode(-7))
	must(enc.Encode("done"))
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		must(err)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gob-echo:", err)
		os.Exit(1)
	}
}
