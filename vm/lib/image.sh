# shellcheck shell=bash
# The guest image recipe. vm/zvm.sh hashes this file together with vm/guest/* to
# key the cache: any change here produces a new image on the next build.
#
# Result (in OUT): vmlinuz, initrd.img, rt.img.zst (ext4 rootfs, 1 GiB sparse),
# ssh/id_ed25519{,.pub} (the only key the guest accepts), versions.txt.
#
# Guest: Debian bookworm minbase, newest bookworm kernel, OpenZFS from
# ZVM_ZFS_SUITE (bookworm-backports -> 2.3.x) built by DKMS, our own PID 1
# (vm/guest/zvm-init), sshd, curl, ca-certificates, jq, age, b3sum; and systemd
# (systemd-sysv, dbus) for the boot mode where systemd is PID 1 (ZRB_VM_INIT=systemd:
# vm/guest/zvm-boot.service brings up the network and prints ZVM-READY).

ZVM_ZFS_SUITE=${ZVM_ZFS_SUITE:-bookworm-backports}
ZVM_GUEST_PKGS="linux-image-amd64 linux-headers-amd64 curl ca-certificates jq age b3sum systemd systemd-sysv dbus"

_chroot_mounts=(proc sys dev dev/pts)

chroot_umount() {
  local root=$1 i
  for (( i=${#_chroot_mounts[@]}-1; i>=0; i-- )); do
    if mountpoint -q "$root/${_chroot_mounts[$i]}"; then
      umount "$root/${_chroot_mounts[$i]}" || umount -l "$root/${_chroot_mounts[$i]}"
    fi
  done
}

chroot_mount() {
  local root=$1 d
  for d in "${_chroot_mounts[@]}"; do mount --bind "/$d" "$root/$d"; done
}

# step NAME CMD... : run one build step, log its duration, fail with its name.
step() {
  local name=$1 t rc; shift
  t=$(now)
  log "build: $name ..."
  # subshell with errexit of its own: a failing command anywhere in the step fails it
  set +e; ( set -eo pipefail; "$@" ); rc=$?; set -e
  [ "$rc" -eq 0 ] || die "build step '$name' failed (exit $rc)"
  log "build: $name done in $(elapsed "$t")s"
}

_debootstrap() {
  debootstrap --variant=minbase --components=main,contrib \
    --include=linux-image-amd64,kmod,iproute2,openssh-server,procps,ca-certificates,udev \
    bookworm "$1" "$2"
}

_apt_sources() {
  local root=$1 mirror=$2 secmirror=$3
  cat > "$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main contrib
deb $mirror bookworm-updates main contrib
deb $secmirror bookworm-security main contrib
deb $mirror bookworm-backports main contrib
SRC
  # never start daemons inside the chroot
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
}

_in_chroot() { local root=$1; shift; DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"; }

_drop_old_kernels() {
  local root=$1 newest k
  newest=$(ls "$root/lib/modules" | sort -V | tail -1)
  for k in $(ls "$root/lib/modules"); do
    [ "$k" = "$newest" ] && continue
    _in_chroot "$root" apt-get purge -y "linux-image-$k" || warn "could not purge linux-image-$k"
    rm -rf "$root/lib/modules/$k"
  done
  [ -f "$root/lib/modules/$newest/updates/dkms/zfs.ko" ] || [ -f "$root/lib/modules/$newest/updates/dkms/zfs.ko.xz" ] \
    || { echo "no zfs.ko for kernel $newest (dkms status: $(_in_chroot "$root" dkms status))" >&2; return 1; }
}

_small_initramfs() {
  local root=$1
  # only what is needed to mount /dev/vda: 34 MB -> ~6 MB, ~15 s less TCG boot
  sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
  printf 'virtio_pci\nvirtio_blk\next4\n' >> "$root/etc/initramfs-tools/modules"
  _in_chroot "$root" update-initramfs -u -k all
  _in_chroot "$root" apt-get clean
}

_guest_config() {
  local root=$1 out=$2
  mkdir -p "$out/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$out/ssh/id_ed25519" -C zrb-vm
  install -d -m 700 "$root/root/.ssh"
  install -m 600 "$out/ssh/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
  printf 'PermitRootLogin prohibit-password\nUseDNS no\n' > "$root/etc/ssh/sshd_config.d/zvm.conf"
  echo zvm > "$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 zvm\n' > "$root/etc/hosts"
  echo '/dev/vda / ext4 rw,relatime 0 1' > "$root/etc/fstab"
  install -m 755 "$ZVM_ROOT/guest/zvm-init" "$root/sbin/zvm-init"
  # systemd boot mode: our unit does what zvm-init does after systemd's own early boot;
  # timers that would wake up during a test run are masked
  install -m 644 "$ZVM_ROOT/guest/zvm-boot.service" "$root/etc/systemd/system/zvm-boot.service"
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/zvm-boot.service "$root/etc/systemd/system/multi-user.target.wants/zvm-boot.service"
  local u
  for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
           systemd-networkd-wait-online.service zfs-zed.service serial-getty@ttyS0.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
  done
}

_export_artefacts() {
  local root=$1 work=$2 out=$3
  cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
  cp "$root"/boot/initrd.img-* "$out/initrd.img"
  {
    echo "kernel: $(ls "$root/lib/modules")"
    echo "zfs: $(_in_chroot "$root" dpkg-query -W -f '${Version}' zfsutils-linux)"
    echo "built: $(date -u +%FT%TZ)"
  } > "$out/versions.txt"
  # runtime rootfs without compilers, headers, DKMS trees, docs: ~1.1 GB -> ~750 MB
  rm -rf "$work/root-rt"; mkdir "$work/root-rt"
  tar -C "$root" --exclude=./usr/src --exclude=./usr/lib/gcc \
      --exclude='./var/lib/dkms/zfs/*/build' --exclude='./var/lib/dkms/zfs/*/source' \
      --exclude=./var/cache/apt --exclude=./var/lib/apt/lists \
      --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/locale \
      --exclude=./usr/lib/x86_64-linux-gnu/perl \
      --exclude='./lib/modules/*/kernel/drivers/gpu' --exclude='./lib/modules/*/kernel/drivers/net/wireless' \
      --exclude='./lib/modules/*/kernel/drivers/media' --exclude='./lib/modules/*/kernel/drivers/infiniband' \
      --exclude='./lib/modules/*/kernel/sound' --exclude='./lib/modules/*/kernel/drivers/staging' \
      -cf - . | tar -C "$work/root-rt" -xf -
  rm -f "$work/rt.img"; truncate -s 1G "$work/rt.img"
  mkfs.ext4 -q -F -L zvmroot -d "$work/root-rt" "$work/rt.img"
  zstd -q -T2 -10 --sparse -f "$work/rt.img" -o "$out/rt.img.zst"
  rm -rf "$work/root-rt" "$work/rt.img"
}

# build_image WORK OUT : WORK is scratch (deleted by the caller), OUT receives the artefacts.
build_image() {
  local work=$1 out=$2 root=$1/root mirror secmirror
  mirror=$(apt_uri_for bookworm) || die "cannot find the host's apt URI for 'bookworm' in /etc/apt/sources.list{,.d}"
  secmirror=$(apt_uri_for bookworm-security) || { secmirror="${mirror%/debian}/debian-security"; warn "no bookworm-security source on the host; using $secmirror"; }
  log "build: mirror $mirror, security $secmirror, zfs from $ZVM_ZFS_SUITE"
  mkdir -p "$root" "$out"

  step "debootstrap minbase (~2.5 min)" _debootstrap "$root" "$mirror"
  _apt_sources "$root" "$mirror" "$secmirror"
  chroot_mount "$root"
  # shellcheck disable=SC2064
  trap "chroot_umount '$root'" EXIT
  step "apt-get update" _in_chroot "$root" apt-get update
  step "kernel, headers, guest tools (~1 min)" _in_chroot "$root" apt-get install -y --no-install-recommends $ZVM_GUEST_PKGS
  step "zfs-dkms + zfsutils-linux from $ZVM_ZFS_SUITE (~11 min, DKMS)" \
       _in_chroot "$root" apt-get install -y --no-install-recommends -t "$ZVM_ZFS_SUITE" zfs-dkms zfsutils-linux
  step "drop kernels without zfs.ko" _drop_old_kernels "$root"
  step "small initramfs" _small_initramfs "$root"
  step "guest config" _guest_config "$root" "$out"
  chroot_umount "$root"; trap - EXIT
  step "slim rootfs, mkfs.ext4, zstd (~1 min)" _export_artefacts "$root" "$work" "$out"
}
