// Package loopback decides whether a host name stays on this machine: the
// one rule for where dozo allows plain HTTP (tokens must never cross a
// network unencrypted).
package loopback

import "net"

// Host reports whether host (a name or IP, without port or brackets) is
// "localhost" or a loopback address.
func Host(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
