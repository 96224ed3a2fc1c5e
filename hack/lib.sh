# Shared by the image build scripts (sourced, not run).

# mmdebstrap options for small images: no recommends, the dated snapshot
# mirror's Release files accepted, docs, man pages and translations left
# out (nobody reads them in a VM image or a runner).
MMDEBSTRAP_SLIM=(
	--aptopt='APT::Install-Recommends "false"'
	--aptopt='Acquire::Check-Valid-Until "false"'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/locale/*'
)
