package plugin

import nagios "github.com/atc0005/go-nagios"

type nagiosPD = nagios.PerformanceData
