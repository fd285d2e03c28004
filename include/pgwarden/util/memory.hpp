#pragma once
// Giving back memory an idle daemon no longer touches. pgwarden's resident set after start-up
// is mostly code pages of shared libraries that ran once (library constructors, TLS and LDAP
// set-up that libpq pulls in, initdb and bootstrap paths); the kernel keeps them in the page
// cache for every process, but they count in our RSS until our mapping of them is dropped.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgwarden::util {

// What release_unused_pages() did.
struct PageRelease {
  size_t objects = 0;  // loaded ELF objects (the executable and shared libraries) looked at
  size_t ranges = 0;   // read-only ranges dropped
  size_t bytes = 0;    // their size (mapped, not necessarily resident)
};

// Drops this process's page-table entries for the read-only segments (code and constants) of
// the executable and every loaded shared library, exactly as their files have them, so the
// kernel maps them back from the page cache on next use (a minor fault, no I/O). Relocated
// data (PT_GNU_RELRO, writable segments) and objects with text relocations are never touched.
// Then returns free heap to the kernel (malloc_trim). Safe to call at any time from any thread.
// The ranges come from the dynamic linker's list (dl_iterate_phdr), not /proc/self/smaps,
// whose page-table walk for every mapping cost more than an idle HA cycle.
PageRelease release_unused_pages();

// One program header of a loaded object, as much as the decision needs.
struct ElfSegment {
  uint32_t type = 0;   // PT_LOAD, PT_GNU_RELRO, ...
  uint32_t flags = 0;  // PF_R | PF_W | PF_X
  uintptr_t vaddr = 0, memsz = 0;
};
struct AddressRange {
  uintptr_t begin = 0, end = 0;
};

// The decision for one object, for tests: the whole pages of its non-writable PT_LOAD
// segments (at `base` + vaddr), less any page of a PT_GNU_RELRO range; nothing when the object
// has text relocations (its code was written at load time).
std::vector<AddressRange> read_only_ranges(uintptr_t base, const std::vector<ElfSegment>& segments,
                                           bool text_relocations, uintptr_t page_size);

}  // namespace pgwarden::util
