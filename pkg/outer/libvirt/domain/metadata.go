package domain

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Namespace is bcvk's XML namespace in a domain's <metadata>; a domain with
// an <instance> element in it was made by bcvk. The "1" is the format's
// version: a change that old readers would misread gets a new namespace.
const (
	Namespace = "https://github.com/bcvk/bcvk/libvirt/1"
	Prefix    = "bcvk"
)

// InstallOptions are the to-disk options the base disk was made with; with
// the digest they name the base disk.
type InstallOptions struct {
	Filesystem string   `json:"filesystem,omitempty"`
	RootSize   string   `json:"rootSize,omitempty"`
	DiskSize   int64    `json:"diskSize,omitempty"` // bytes
	KernelArgs []string `json:"kernelArgs,omitempty"`
}

// Metadata is what bcvk keeps in a domain: where the VM came from and how to
// reach it. The SSH private key is never here.
type Metadata struct {
	Image    string            `json:"image"`
	Digest   string            `json:"digest"`
	BaseDisk string            `json:"baseDisk,omitempty"` // storage volume name
	Install  InstallOptions    `json:"install"`
	Version  string            `json:"bcvkVersion"`
	SSHPort  uint16            `json:"sshPort"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Limits for metadata, on the way in and on the way out.
const (
	// MaxDomainXML bounds the domain XML ParseMetadata reads. A bcvk domain
	// is a few KiB; libvirt adds its live state (aliases, addresses).
	MaxDomainXML   = 1 << 20
	MaxLabels      = 64
	MaxKernelArgs  = 128
	maxImageLen    = 1024
	maxKargLen     = 4096
	maxLabelKey    = 253
	maxLabelValue  = 1024
	maxVersionLen  = 128
	maxFieldLen    = 64 // filesystem, root size
	maxBaseDiskLen = 255
)

var (
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
	simpleRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// ErrNotBcvk is returned by ParseMetadata for a domain without bcvk's
// metadata: a domain bcvk did not make, which it must not touch.
var ErrNotBcvk = errors.New("domain has no bcvk metadata")

// printable reports whether s is valid UTF-8 without control characters
// (which XML 1.0 cannot carry anyway, and a terminal should not get).
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError
	})
}

func checkText(what, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return invalid("metadata %s: empty", what)
	case len(s) > max:
		return invalid("metadata %s: longer than %d bytes", what, max)
	case !printable(s):
		return invalid("metadata %s %q: not printable UTF-8", what, s)
	}
	return nil
}

func (m Metadata) validate() error {
	if err := checkText("image", m.Image, maxImageLen, true); err != nil {
		return err
	}
	if strings.ContainsAny(m.Image, " \t") {
		return invalid("metadata image %q: has white space", m.Image)
	}
	if !digestRE.MatchString(m.Digest) {
		return invalid("metadata digest %q: want sha256: and 64 lower-case hex digits", m.Digest)
	}
	if m.BaseDisk != "" && (len(m.BaseDisk) > maxBaseDiskLen || !simpleRE.MatchString(m.BaseDisk)) {
		return invalid("metadata base disk %q: want a plain volume name", m.BaseDisk)
	}
	if err := checkText("bcvk version", m.Version, maxVersionLen, true); err != nil {
		return err
	}
	if m.SSHPort == 0 {
		return invalid("metadata ssh port: 0")
	}
	if m.Created.IsZero() {
		return invalid("metadata created: no time")
	}
	in := m.Install
	if in.Filesystem != "" && (len(in.Filesystem) > maxFieldLen || !simpleRE.MatchString(in.Filesystem)) {
		return invalid("metadata filesystem %q", in.Filesystem)
	}
	if in.RootSize != "" && (len(in.RootSize) > maxFieldLen || !simpleRE.MatchString(in.RootSize)) {
		return invalid("metadata root size %q", in.RootSize)
	}
	if in.DiskSize < 0 {
		return invalid("metadata disk size %d: negative", in.DiskSize)
	}
	if len(in.KernelArgs) > MaxKernelArgs {
		return invalid("metadata: %d kernel arguments, at most %d", len(in.KernelArgs), MaxKernelArgs)
	}
	for _, k := range in.KernelArgs {
		if err := checkText("kernel argument", k, maxKargLen, true); err != nil {
			return err
		}
	}
	if len(m.Labels) > MaxLabels {
		return invalid("metadata: %d labels, at most %d", len(m.Labels), MaxLabels)
	}
	for k, v := range m.Labels {
		if len(k) > maxLabelKey || !labelKeyRE.MatchString(k) {
			return invalid("metadata label key %q: want letters, digits, '.', '_', '/' or '-'", k)
		}
		if err := checkText("label "+k, v, maxLabelValue, false); err != nil {
			return err
		}
	}
	return nil
}

// xml renders m as the one element bcvk keeps in <metadata>. It is written
// by hand, with every value escaped, because encoding/xml cannot give an
// element a chosen prefix, and libvirt keeps the prefix it is given.
func (m Metadata) xml() (string, error) {
	if err := m.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s)) // writes to memory; fails only on invalid UTF-8, checked above
		return e.String()
	}
	el := func(name, text string) {
		fmt.Fprintf(&b, "\n      <%s:%s>%s</%s:%s>", Prefix, name, esc(text), Prefix, name)
	}
	fmt.Fprintf(&b, "\n    <%s:instance xmlns:%s=\"%s\">", Prefix, Prefix, Namespace)
	el("image", m.Image)
	el("digest", m.Digest)
	if m.BaseDisk != "" {
		el("base-disk", m.BaseDisk)
	}
	el("version", m.Version)
	el("ssh-port", strconv.Itoa(int(m.SSHPort)))
	el("created", m.Created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "\n      <%s:install>", Prefix)
	if m.Install.Filesystem != "" {
		fmt.Fprintf(&b, "\n        <%s:filesystem>%s</%s:filesystem>", Prefix, esc(m.Install.Filesystem), Prefix)
	}
	if m.Install.RootSize != "" {
		fmt.Fprintf(&b, "\n        <%s:root-size>%s</%s:root-size>", Prefix, esc(m.Install.RootSize), Prefix)
	}
	if m.Install.DiskSize != 0 {
		fmt.Fprintf(&b, "\n        <%s:disk-size>%d</%s:disk-size>", Prefix, m.Install.DiskSize, Prefix)
	}
	for _, k := range m.Install.KernelArgs {
		fmt.Fprintf(&b, "\n        <%s:karg>%s</%s:karg>", Prefix, esc(k), Prefix)
	}
	fmt.Fprintf(&b, "\n      </%s:install>", Prefix)
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// Keys match labelKeyRE: nothing in them needs escaping in an attribute.
		fmt.Fprintf(&b, "\n      <%s:label key=\"%s\">%s</%s:label>", Prefix, k, esc(m.Labels[k]), Prefix)
	}
	fmt.Fprintf(&b, "\n    </%s:instance>\n  ", Prefix)
	return b.String(), nil
}

// wire is the decoding shape of the metadata element. Fields are matched by
// namespace, not by prefix: libvirt may print another prefix than ours.
type wire struct {
	Image    []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 image"`
	Digest   []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 digest"`
	BaseDisk []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 base-disk"`
	Version  []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 version"`
	SSHPort  []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 ssh-port"`
	Created  []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 created"`
	Install  []struct {
		Filesystem []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 filesystem"`
		RootSize   []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 root-size"`
		DiskSize   []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 disk-size"`
		KernelArgs []string `xml:"https://github.com/bcvk/bcvk/libvirt/1 karg"`
	} `xml:"https://github.com/bcvk/bcvk/libvirt/1 install"`
	Labels []struct {
		Key   string `xml:"key,attr"`
		Value string `xml:",chardata"`
	} `xml:"https://github.com/bcvk/bcvk/libvirt/1 label"`
}

// one returns the single value of a field that must occur once (or, when
// optional, at most once): a repeated element is an error, not "last wins".
func one(what string, vs []string, optional bool) (string, error) {
	switch {
	case len(vs) == 1:
		return vs[0], nil
	case len(vs) == 0 && optional:
		return "", nil
	case len(vs) == 0:
		return "", fmt.Errorf("bcvk metadata: no %s", what)
	default:
		return "", fmt.Errorf("bcvk metadata: %s given %d times", what, len(vs))
	}
}

// ParseMetadata returns bcvk's metadata from a domain's XML, as returned by
// libvirt's GetXMLDesc. The XML is untrusted: a remote libvirtd, or anyone
// who may define domains there, wrote it. It is size-bounded, nesting-bounded
// and every field is validated as XML validates it on the way out. A domain
// without bcvk's element gives ErrNotBcvk.
func ParseMetadata(domainXML string) (Metadata, error) {
	if len(domainXML) > MaxDomainXML {
		return Metadata{}, fmt.Errorf("domain XML of %d bytes: more than the %d bcvk reads", len(domainXML), MaxDomainXML)
	}
	w, err := findInstance(domainXML)
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if m.Image, err = one("image", w.Image, false); err != nil {
		return Metadata{}, err
	}
	if m.Digest, err = one("digest", w.Digest, false); err != nil {
		return Metadata{}, err
	}
	if m.BaseDisk, err = one("base-disk", w.BaseDisk, true); err != nil {
		return Metadata{}, err
	}
	if m.Version, err = one("version", w.Version, false); err != nil {
		return Metadata{}, err
	}
	port, err := one("ssh-port", w.SSHPort, false)
	if err != nil {
		return Metadata{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Metadata{}, fmt.Errorf("bcvk metadata: ssh-port %q: %w", port, err)
	}
	m.SSHPort = uint16(p)
	created, err := one("created", w.Created, false)
	if err != nil {
		return Metadata{}, err
	}
	if m.Created, err = time.Parse(time.RFC3339, created); err != nil {
		return Metadata{}, fmt.Errorf("bcvk metadata: created %q: %w", created, err)
	}
	switch len(w.Install) {
	case 0:
	case 1:
		in := w.Install[0]
		if m.Install.Filesystem, err = one("filesystem", in.Filesystem, true); err != nil {
			return Metadata{}, err
		}
		if m.Install.RootSize, err = one("root-size", in.RootSize, true); err != nil {
			return Metadata{}, err
		}
		ds, err := one("disk-size", in.DiskSize, true)
		if err != nil {
			return Metadata{}, err
		}
		if ds != "" {
			if m.Install.DiskSize, err = strconv.ParseInt(ds, 10, 64); err != nil {
				return Metadata{}, fmt.Errorf("bcvk metadata: disk-size %q: %w", ds, err)
			}
		}
		if len(in.KernelArgs) > MaxKernelArgs {
			return Metadata{}, fmt.Errorf("bcvk metadata: %d kernel arguments, at most %d", len(in.KernelArgs), MaxKernelArgs)
		}
		m.Install.KernelArgs = in.KernelArgs
	default:
		return Metadata{}, fmt.Errorf("bcvk metadata: install given %d times", len(w.Install))
	}
	if len(w.Labels) > MaxLabels {
		return Metadata{}, fmt.Errorf("bcvk metadata: %d labels, at most %d", len(w.Labels), MaxLabels)
	}
	for _, l := range w.Labels {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		if _, dup := m.Labels[l.Key]; dup {
			return Metadata{}, fmt.Errorf("bcvk metadata: label %q given twice", l.Key)
		}
		m.Labels[l.Key] = l.Value
	}
	if err := m.validate(); err != nil {
		return Metadata{}, fmt.Errorf("bcvk metadata: %w", err)
	}
	return m, nil
}

// maxDepth bounds element nesting while looking for the metadata. libvirt's
// deepest element in a domain is about eight levels down.
const maxDepth = 32

// findInstance walks the document to /domain/metadata/bcvk:instance and
// decodes that element. Anything else is skipped without being kept.
func findInstance(doc string) (wire, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = true
	d.Entity = nil // no entities beyond XML's five
	var path []xml.Name
	var found *wire
	roots := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return wire{}, fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return wire{}, errors.New("domain XML: has a <!...> directive (DOCTYPE or entity declaration)")
		case xml.StartElement:
			if len(path) == 0 {
				if roots++; roots > 1 {
					return wire{}, errors.New("domain XML: more than one root element")
				}
				if t.Name.Local != "domain" || t.Name.Space != "" {
					return wire{}, fmt.Errorf("domain XML: root element is <%s>, not <domain>", t.Name.Local)
				}
			}
			if len(path) == 2 && path[1].Local == "metadata" && path[1].Space == "" &&
				t.Name.Space == Namespace && t.Name.Local == "instance" {
				if found != nil {
					return wire{}, errors.New("bcvk metadata: more than one instance element")
				}
				var w wire
				if err := d.DecodeElement(&w, &t); err != nil {
					return wire{}, fmt.Errorf("bcvk metadata: %w", err)
				}
				found = &w
				continue
			}
			if len(path) >= maxDepth {
				return wire{}, fmt.Errorf("domain XML: nested deeper than %d elements", maxDepth)
			}
			path = append(path, t.Name)
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
	if roots == 0 {
		return wire{}, errors.New("domain XML: no <domain> element")
	}
	if found == nil {
		return wire{}, ErrNotBcvk
	}
	return *found, nil
}
