package consultest

import (
	"fmt"
	"net"
)

// freePorts picks five distinct loopback ports. Serf listens on TCP and UDP
// on the same number, so every port is checked free on both.
func freePorts() (ports, error) {
	var got []int
	seen := map[int]bool{}
	for len(got) < 5 {
		p, err := freePort()
		if err != nil {
			return ports{}, fmt.Errorf("picking free ports: %w", err)
		}
		if !seen[p] {
			seen[p] = true
			got = append(got, p)
		}
	}
	return ports{http: got[0], server: got[1], serfLAN: got[2], serfWAN: got[3], https: got[4]}, nil
}

// freePort returns a port that is free on 127.0.0.1 for TCP and UDP.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both tcp and udp on 127.0.0.1")
}
