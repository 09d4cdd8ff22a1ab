"""Host side of the real-kernel end-to-end harness.

`kernel` prepares a cached Debian kernel (vmlinux, a trimmed module tree, an initramfs),
`qemu` boots it with the host root and the project shared over 9p and collects what the
guest wrote back.  Nothing is installed on the host.
"""
