package spec

import (
	"fmt"
	"sort"
	"strings"
)

// InstanceType is a named size (--itype), as in KubeVirt's u1 series, which
// upstream bcvk and cloud users know.
type InstanceType struct {
	VCPUs     int
	MemoryMiB int
}

var instanceTypes = map[string]InstanceType{
	"u1.nano":     {1, 512},
	"u1.micro":    {1, 1024},
	"u1.small":    {1, 2048},
	"u1.medium":   {1, 4096},
	"u1.2xmedium": {2, 4096},
	"u1.large":    {2, 8192},
	"u1.xlarge":   {4, 16384},
	"u1.2xlarge":  {8, 32768},
	"u1.4xlarge":  {16, 65536},
	"u1.8xlarge":  {32, 131072},
}

// InstanceTypeNames lists the types from small to large.
func InstanceTypeNames() []string {
	n := make([]string, 0, len(instanceTypes))
	for k := range instanceTypes {
		n = append(n, k)
	}
	sort.Slice(n, func(i, j int) bool {
		a, b := instanceTypes[n[i]], instanceTypes[n[j]]
		if a.MemoryMiB != b.MemoryMiB {
			return a.MemoryMiB < b.MemoryMiB
		}
		return a.VCPUs < b.VCPUs
	})
	return n
}

// LookupInstanceType finds a type by name.
func LookupInstanceType(name string) (InstanceType, error) {
	if t, ok := instanceTypes[name]; ok {
		return t, nil
	}
	return InstanceType{}, fmt.Errorf("--itype %q: use one of %s", name, strings.Join(InstanceTypeNames(), ", "))
}
