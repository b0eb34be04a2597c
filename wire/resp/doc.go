// Package resp speaks RESP2 and RESP3, Redis's serialization protocol, as a server:
// a Reader that parses client requests (multibulk arrays of bulk strings,
// and inline commands for telnet) within limits the caller sets, a Writer
// for Redis's reply types, and Match, Redis's glob for KEYS and SCAN.
//
// It knows nothing of commands or of synod: the proxy (proxy/resp.go)
// translates a parsed request into the line protocol's requests its
// connections already execute, and renders their replies with the Writer.
//
// A request is
//
//	*<n>\r\n   then n times   $<len>\r\n<len bytes>\r\n
//
// or, when it does not start with '*', one inline line of words split on
// spaces and tabs, with "double" and 'single' quoting as redis-cli's own.
// Nothing here is nested: a request is a flat array, so an array inside
// one is a protocol error, as it is in Redis.
package resp
