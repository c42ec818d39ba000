package sniff

import "slices"

// tcpPorts is rstwatch's built-in table of well-known TCP service ports,
// sorted by port, so that output can name a service without reading
// /etc/services (absent from scratch containers and most firmware). A name
// is the one Debian's /etc/services gives the port where it has one;
// otherwise it is the service that usually listens there, which is often
// not what IANA's registry names.
var tcpPorts = [...]portName{
	{20, "ftp-data"},
	{21, "ftp"},
	{22, "ssh"},
	{23, "telnet"},
	{25, "smtp"},
	{53, "domain"},
	{80, "http"},
	{88, "kerberos"},
	{110, "pop3"},
	{111, "sunrpc"},
	{113, "auth"},
	{119, "nntp"},
	{135, "epmap"},
	{139, "netbios-ssn"},
	{143, "imap2"},
	{179, "bgp"},
	{389, "ldap"},
	{443, "https"},
	{445, "microsoft-ds"},
	{465, "submissions"},
	{514, "shell"},
	{515, "printer"},
	{587, "submission"},
	{631, "ipp"},
	{636, "ldaps"},
	{873, "rsync"},
	{990, "ftps"},
	{993, "imaps"},
	{995, "pop3s"},
	{1080, "socks"},
	{1194, "openvpn"},
	{1433, "ms-sql-s"},
	{1521, "oracle"},
	{1723, "pptp"},
	{1883, "mqtt"},
	{2049, "nfs"},
	{2181, "zookeeper"},
	{2375, "docker"},
	{2376, "docker-tls"},
	{2379, "etcd-client"},
	{2380, "etcd-server"},
	{3128, "squid"},
	{3260, "iscsi-target"},
	{3306, "mysql"},
	{3389, "ms-wbt-server"},
	{4369, "epmd"},
	{5060, "sip"},
	{5061, "sip-tls"},
	{5222, "xmpp-client"},
	{5432, "postgresql"},
	{5672, "amqp"},
	{5900, "vnc"},
	{5984, "couchdb"},
	{6379, "redis"},
	{6443, "kube-apiserver"},
	{6667, "ircd"},
	{8080, "http-alt"},
	{8443, "https-alt"},
	{8883, "secure-mqtt"},
	{9042, "cassandra"},
	{9090, "prometheus"},
	{9092, "kafka"},
	{9200, "elasticsearch"},
	{9418, "git"},
	{10250, "kubelet"},
	{11211, "memcached"},
	{27017, "mongodb"},
}

type portName struct {
	port uint16
	name string
}

// PortName returns the name of the service that usually listens on TCP
// port port ("ssh" for 22, "https" for 443), from a table built into
// rstwatch, or "" for a port the table does not hold. It reads no file and
// does not allocate.
func PortName(port uint16) string {
	i, ok := slices.BinarySearchFunc(tcpPorts[:], port, func(e portName, p uint16) int {
		return int(e.port) - int(p)
	})
	if !ok {
		return ""
	}
	return tcpPorts[i].name
}

// portAliases are other names people give the services of tcpPorts.
var portAliases = map[string]uint16{"dns": 53, "postgres": 5432, "imap": 143, "rdp": 3389, "ldap": 389, "mssql": 1433}

// PortByName returns the TCP port of a service named as PortName names it
// ("http", "ssh"), or by a common alias ("dns", "postgres", "imap",
// "rdp", "mssql"). It reads no file.
func PortByName(name string) (uint16, bool) {
	if p, ok := portAliases[name]; ok {
		return p, true
	}
	for _, e := range tcpPorts {
		if e.name == name {
			return e.port, true
		}
	}
	return 0, false
}
