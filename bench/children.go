package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/p2pd/p2pd/bench/reftunnel"
)

// childArg is the first argument that makes the bench binary run one of its
// helper processes instead of the harness.
const childArg = "_child"

// runChild runs a helper process: "service" or "reftunnel", which print
// the addresses they listen on, one "addr HOST:PORT" line each, then
// "ready", and run until SIGTERM or SIGINT; or "nocap BIN ARGS...", which
// becomes BIN without CAP_NET_ADMIN.
func runChild(args []string) error {
	if len(args) == 0 {
		return errors.New("child: which one? service, reftunnel or nocap")
	}
	if args[0] == "nocap" {
		if len(args) < 2 {
			return errors.New("child: nocap BIN ARGS...")
		}
		return execWithoutNetAdmin(args[1], args[2:])
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch args[0] {
	case "service":
		return runService(ctx)
	case "reftunnel":
		return runRefTunnel(ctx, args[1:])
	}
	return fmt.Errorf("child: unknown helper %q", args[0])
}

// runService serves the two test services on loopback: a sink (reads to the
// end, then answers with the byte count as 8 bytes big-endian) and an echo.
func runService(ctx context.Context) error {
	var wg sync.WaitGroup
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}()
	for _, handle := range []func(net.Conn){sink, echo} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConns(ln, handle, &wg)
		}()
		fmt.Printf("addr %s\n", ln.Addr())
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// serveConns accepts until ln is closed and runs handle for each connection
// in a goroutine counted in wg.
func serveConns(ln net.Listener, handle func(net.Conn), wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // EMFILE and the like: the client will see its dial fail
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			handle(c)
		}()
	}
}

// sink reads an 8-byte big-endian length and that many bytes, and answers
// with the count it read.
func sink(c net.Conn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	want := int64(binary.BigEndian.Uint64(hdr[:]))
	buf := make([]byte, 256<<10)
	var n int64
	for n < want {
		m, err := c.Read(buf[:min(int64(len(buf)), want-n)])
		n += int64(m)
		if err != nil {
			break
		}
	}
	var ack [8]byte
	binary.BigEndian.PutUint64(ack[:], uint64(n))
	if _, err := c.Write(ack[:]); err != nil {
		return
	}
	// Wait for the client to close, so it keeps the TIME_WAIT state.
	_, _ = c.Read(buf[:1])
}

// echo sends back what it reads and passes the end of data on.
func echo(c net.Conn) {
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = c.Read(buf[:1])
			return
		}
		if err != nil {
			return
		}
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runRefTunnel runs one half of the reference tunnel for each -map
// LISTEN=REMOTE.
func runRefTunnel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reftunnel", flag.ContinueOnError)
	role := fs.String("role", "", "entry or exit")
	certFile := fs.String("cert", "", "PEM certificate (exit: presented; entry: trusted)")
	keyFile := fs.String("key", "", "PEM key (exit)")
	plain := fs.Bool("plain", false, "no encryption between the halves: a plain relay")
	var maps listFlag
	fs.Var(&maps, "map", "LISTEN=REMOTE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var r reftunnel.Role
	switch *role {
	case "entry":
		r = reftunnel.Entry
	case "exit":
		r = reftunnel.Exit
	default:
		return fmt.Errorf("reftunnel: -role must be entry or exit, not %q", *role)
	}
	var opts []reftunnel.Option
	switch {
	case *plain:
		opts = append(opts, reftunnel.WithoutEncryption())
	case r == reftunnel.Exit:
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("reftunnel: %w", err)
		}
		opts = append(opts, reftunnel.WithCertificate(cert))
	default:
		pemBytes, err := os.ReadFile(*certFile)
		if err != nil {
			return fmt.Errorf("reftunnel: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("reftunnel: no certificate in %s", *certFile)
		}
		opts = append(opts, reftunnel.WithRootCAs(pool))
	}
	var proxies []*reftunnel.Proxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	for _, m := range maps {
		listen, remote, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("reftunnel: -map %q: want LISTEN=REMOTE", m)
		}
		p, err := reftunnel.Listen(ctx, r, listen, remote, opts...)
		if err != nil {
			return err
		}
		proxies = append(proxies, p)
		fmt.Printf("addr %s\n", p.Addr())
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// writeCertificate makes the reference tunnel's certificate and writes it
// and its key as PEM files in dir.
func writeCertificate(dir string) (certFile, keyFile string, err error) {
	cert, _, err := reftunnel.NewCertificate()
	if err != nil {
		return "", "", err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", fmt.Errorf("encoding the key: %w", err)
	}
	certFile, keyFile = dir+"/ref-cert.pem", dir+"/ref-key.pem"
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
