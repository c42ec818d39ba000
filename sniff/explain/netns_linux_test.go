package explain_test

import (
	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
)

func netnsDo(ns *netnstest.NS, fn func() error) error { return netns.Do(ns.Path, fn) }
