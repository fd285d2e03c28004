#include "pgwarden/util/memory.hpp"

#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string_view>

namespace pgwarden::util {
namespace {

// DT_TEXTREL, or DF_TEXTREL in DT_FLAGS, in an object's dynamic section.
bool has_text_relocations(const dl_phdr_info& info) {
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_DYNAMIC) continue;
    for (auto* d = reinterpret_cast<const ElfW(Dyn)*>(info.dlpi_addr + ph.p_vaddr); d->d_tag != DT_NULL; ++d) {
      if (d->d_tag == DT_TEXTREL) return true;
      if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL)) return true;
    }
  }
  return false;
}

struct Walk {
  uintptr_t page_size = 4096;
  uintptr_t vdso = 0;
  PageRelease out;
};

int release_object(dl_phdr_info* info, size_t, void* data) {
  auto& walk = *static_cast<Walk*>(data);
  // The vDSO is the kernel's, not a file mapping: its headers lie in its own image.
  const auto headers = reinterpret_cast<uintptr_t>(info->dlpi_phdr);
  if (walk.vdso != 0 && headers >= walk.vdso && headers - walk.vdso < 64 * 1024) return 0;
  if (info->dlpi_name && std::string_view(info->dlpi_name).rfind("linux-vdso", 0) == 0) return 0;
  ++walk.out.objects;
  std::vector<ElfSegment> segments;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    segments.push_back({ph.p_type, ph.p_flags, static_cast<uintptr_t>(ph.p_vaddr), static_cast<uintptr_t>(ph.p_memsz)});
  }
  for (const auto& r : read_only_ranges(info->dlpi_addr, segments, has_text_relocations(*info), walk.page_size)) {
    if (madvise(reinterpret_cast<void*>(r.begin), r.end - r.begin, MADV_DONTNEED) == 0) {
      ++walk.out.ranges;
      walk.out.bytes += r.end - r.begin;
    }
  }
  return 0;
}

}  // namespace

std::vector<AddressRange> read_only_ranges(uintptr_t base, const std::vector<ElfSegment>& segments,
                                           bool text_relocations, uintptr_t page_size) {
  std::vector<AddressRange> out;
  if (text_relocations || page_size == 0) return out;
  auto down = [&](uintptr_t a) { return a - a % page_size; };
  auto up = [&](uintptr_t a) { return down(a + page_size - 1); };
  // Pages that hold relocated data, rounded outwards: never dropped.
  std::vector<AddressRange> relro;
  for (const auto& s : segments)
    if (s.type == PT_GNU_RELRO && s.memsz > 0) relro.push_back({down(base + s.vaddr), up(base + s.vaddr + s.memsz)});
  for (const auto& s : segments) {
    if (s.type != PT_LOAD || (s.flags & PF_W) || s.memsz == 0) continue;
    // Whole pages only, rounded inwards: a page shared with a neighbouring segment stays.
    AddressRange r{up(base + s.vaddr), down(base + s.vaddr + s.memsz)};
    std::vector<AddressRange> pieces;
    if (r.begin < r.end) pieces.push_back(r);
    for (const auto& x : relro) {
      std::vector<AddressRange> next;
      for (const auto& p : pieces) {
        if (x.end <= p.begin || x.begin >= p.end) {
          next.push_back(p);
          continue;
        }
        if (p.begin < x.begin) next.push_back({p.begin, x.begin});
        if (x.end < p.end) next.push_back({x.end, p.end});
      }
      pieces = std::move(next);
    }
    out.insert(out.end(), pieces.begin(), pieces.end());
  }
  return out;
}

PageRelease release_unused_pages() {
  Walk walk;
  if (long p = sysconf(_SC_PAGESIZE); p > 0) walk.page_size = static_cast<uintptr_t>(p);
  walk.vdso = static_cast<uintptr_t>(getauxval(AT_SYSINFO_EHDR));
  dl_iterate_phdr(release_object, &walk);
  malloc_trim(0);
  return walk.out;
}

}  // namespace pgwarden::util
