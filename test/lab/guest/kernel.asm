; ballast lab guest: a tiny multiboot (v1) kernel for QEMU's -kernel loader, run under TCG.
;
; Settings come from the multiboot command line (libvirt <cmdline>):
;   mode=idle            halt between 64 Hz PIT ticks, count ticks
;   mode=busy            spin (~100 % of its vCPU), still counting ticks
;   mode=dirty mib=N rate=R
;                        after each tick, rewrite one word in 4*R pages (R MiB/s at 64 Hz) of an
;                        N MiB region at 2 MiB, wrapping around; each full pass is one sweep
; Counters at guest-physical 0x500 (read with `xp /4wx 0x500`):
;   0x500 magic 0xBA11A570 (set once running), 0x504 ticks, 0x508 sweeps, 0x50c pages written
;
; Flat 32-bit protected mode, no paging. IDT at 0x1000, variables at 0x600, stack below 0x90000:
; all in free conventional memory, so the image stays small.

bits 32
org 0x100000

MB_MAGIC  equ 0x1BADB002
MB_FLAGS  equ 0x00010000              ; bit 16: the load addresses below are valid (flat binary)
MAGIC     equ 0xBA11A570
C_MAGIC   equ 0x500
C_TICKS   equ 0x504
C_SWEEPS  equ 0x508
C_PAGES   equ 0x50c
V_MODE    equ 0x600                   ; 'i', 'b' or 'd'
V_PAGES   equ 0x604                   ; region size in pages
V_PERTICK equ 0x608                   ; pages to write per tick
V_CURSOR  equ 0x60c                   ; next page index
V_SEEN    equ 0x610                   ; ticks already paid for
IDT       equ 0x1000
REGION    equ 0x200000
PIT_DIV   equ 18643                   ; 1193182 Hz / 64

header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, 0, 0, start      ; header_addr, load_addr, load_end (whole file), bss_end (none), entry

start:
  cli
  cld
  mov esp, 0x90000
  lgdt [gdt_desc]
  jmp 0x08:.flat
.flat:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  mov ss, ax

  xor eax, eax
  mov [C_MAGIC], eax
  mov [C_TICKS], eax
  mov [C_SWEEPS], eax
  mov [C_PAGES], eax
  mov [V_CURSOR], eax
  mov [V_SEEN], eax
  mov [V_PAGES], eax
  mov [V_PERTICK], eax
  mov byte [V_MODE], 'i'

  ; multiboot info: flags bit 2 says the command line pointer at +16 is valid
  xor edx, edx
  test dword [ebx], 4
  jz .parsed_cmd
  mov edx, [ebx + 16]
.parsed_cmd:
  mov [cmdline], edx

  mov edi, key_mode
  mov ecx, 5
  call find
  test eax, eax
  jz .no_mode
  mov al, [eax]
  mov [V_MODE], al
.no_mode:
  mov edi, key_mib
  mov ecx, 4
  call find
  test eax, eax
  jz .no_mib
  mov esi, eax
  call atoi
  shl eax, 8                          ; MiB → 4 KiB pages
  mov [V_PAGES], eax
.no_mib:
  mov edi, key_rate
  mov ecx, 5
  call find
  test eax, eax
  jz .no_rate
  mov esi, eax
  call atoi
  shl eax, 2                          ; MiB/s → pages per 1/64 s
  mov [V_PERTICK], eax
.no_rate:
  ; a dirtying guest without a region or a rate just idles
  cmp byte [V_MODE], 'd'
  jne .idt
  cmp dword [V_PAGES], 0
  je .to_idle
  cmp dword [V_PERTICK], 0
  jne .idt
.to_idle:
  mov byte [V_MODE], 'i'

.idt:
  ; vectors 0-31 (CPU faults) stop the CPU; 32-47 (IRQs) acknowledge and return; 32 counts ticks
  xor ecx, ecx
.idt_loop:
  mov eax, fault
  cmp ecx, 32
  jb .gate
  mov eax, irq_ignore
  cmp ecx, 32
  jne .gate
  mov eax, timer
.gate:
  lea edi, [IDT + ecx * 8]
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8E00          ; present, ring 0, 32-bit interrupt gate
  shr eax, 16
  mov [edi + 6], ax
  inc ecx
  cmp ecx, 48
  jb .idt_loop
  lidt [idt_desc]

  ; PIC: IRQs 0-15 to vectors 32-47, only IRQ0 (PIT) unmasked
  mov al, 0x11
  out 0x20, al
  out 0xA0, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x28
  out 0xA1, al
  mov al, 0x04
  out 0x21, al
  mov al, 0x02
  out 0xA1, al
  mov al, 0x01
  out 0x21, al
  out 0xA1, al
  mov al, 0xFE
  out 0x21, al
  mov al, 0xFF
  out 0xA1, al

  ; PIT channel 0, rate generator, 64 Hz
  mov al, 0x34
  out 0x43, al
  mov ax, PIT_DIV
  out 0x40, al
  mov al, ah
  out 0x40, al

  mov dword [C_MAGIC], MAGIC
  sti
  cmp byte [V_MODE], 'b'
  je busy
  cmp byte [V_MODE], 'd'
  je dirty
idle:
  hlt
  jmp idle

busy:
  pause
  jmp busy

dirty:
  hlt
  ; pay for every tick since the last burst (TCG may deliver several at once), at most one second's worth
  mov eax, [C_TICKS]
  mov ecx, eax
  sub ecx, [V_SEEN]
  mov [V_SEEN], eax
  cmp ecx, 64
  jbe .capped
  mov ecx, 64
.capped:
  imul ecx, [V_PERTICK]
  jecxz dirty
  mov ebx, [V_CURSOR]
.page:
  mov edi, ebx
  shl edi, 12
  mov eax, [C_PAGES]
  mov [REGION + edi], eax             ; a changing value, so no page ever looks all-zero or unchanged
  inc dword [C_PAGES]
  inc ebx
  cmp ebx, [V_PAGES]
  jb .next
  xor ebx, ebx
  inc dword [C_SWEEPS]
.next:
  loop .page
  mov [V_CURSOR], ebx
  jmp dirty

timer:
  push eax
  inc dword [C_TICKS]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

irq_ignore:
  push eax
  mov al, 0x20
  out 0xA0, al
  out 0x20, al
  pop eax
  iret

fault:
  cli
  hlt
  jmp fault

; find: edi = key, ecx = key length → eax = address just after the first match in the command line, or 0
find:
  mov edx, [cmdline]
  test edx, edx
  jz .none
.try:
  cmp byte [edx], 0
  je .none
  push ecx
  push edi
  mov esi, edx
  repe cmpsb
  pop edi
  pop ecx
  je .found
  inc edx
  jmp .try
.found:
  lea eax, [edx + ecx]
  ret
.none:
  xor eax, eax
  ret

; atoi: esi = decimal digits → eax
atoi:
  xor eax, eax
.digit:
  movzx ecx, byte [esi]
  sub ecx, '0'
  cmp ecx, 9
  ja .done
  imul eax, eax, 10
  add eax, ecx
  inc esi
  jmp .digit
.done:
  ret

align 8
gdt:
  dq 0
  dq 0x00CF9A000000FFFF               ; 0x08: code, flat 4 GiB
  dq 0x00CF92000000FFFF               ; 0x10: data, flat 4 GiB
gdt_desc:
  dw gdt_desc - gdt - 1
  dd gdt
idt_desc:
  dw 48 * 8 - 1
  dd IDT
cmdline:
  dd 0
key_mode: db "mode="
key_mib:  db "mib="
key_rate: db "rate="
